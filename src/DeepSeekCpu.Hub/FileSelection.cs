using System.Text.RegularExpressions;

namespace DeepSeekCpu.Hub;

/// <summary>The weights' container in a selection.</summary>
internal enum WeightFormat { Safetensors, Gguf }

/// <summary>
/// What to fetch from a repo: the weights in one format and, for safetensors, the config, tokenizer and generation
/// files beside them. <see cref="ModelPath"/> is what a loader opens, relative to the snapshot ("" for the folder).
/// </summary>
internal sealed record FileSelection(WeightFormat Format, IReadOnlyList<string> Files, string ModelPath, string? Tag)
{
    // Read by the loaders (config, tokenizer, chat template, sampling defaults); the rest of a repo (README,
    // modeling code, original/ checkpoints, other formats) is never fetched.
    private static readonly HashSet<string> SideFiles = new(StringComparer.Ordinal)
    {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
    };

    public const string DefaultTag = "Q4_K_M";

    /// <summary>
    /// Chooses from <paramref name="paths"/> (a repo's files, '/'-separated). Safetensors wins when there is no tag;
    /// a tag selects the GGUF file, or all split shards (NAME-00001-of-0000N.gguf), whose name carries it.
    /// </summary>
    public static FileSelection Select(string repo, IReadOnlyCollection<string> paths, string? tag)
    {
        var ggufs = paths.Where(p => p.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
                                     && !Path.GetFileName(p).StartsWith("mmproj", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).ToList();
        if (tag == null)
        {
            var weights = paths.Where(p => !p.Contains('/') && p.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
            // Some repos carry extra top-level checkpoints (consolidated.safetensors); the transformers files are model*.
            if (weights.Any(p => p.StartsWith("model", StringComparison.Ordinal))) weights = weights.Where(p => p.StartsWith("model", StringComparison.Ordinal)).ToList();
            if (weights.Count > 0)
            {
                var files = weights.Concat(paths.Where(p => SideFiles.Contains(p) || p == "model.safetensors.index.json")).Distinct().Order(StringComparer.Ordinal).ToList();
                return new FileSelection(WeightFormat.Safetensors, files, "", null);
            }
            if (ggufs.Count == 0)
                throw new HubException($"{repo}: no safetensors or GGUF weights in the repo (files: {Preview(paths)})");
            var variants = ggufs.GroupBy(VariantOf).ToList();
            if (variants.Count == 1) return Gguf(variants[0].ToList(), TagOf(variants[0].Key));
            tag = DefaultTag;
            var byDefault = Matching(ggufs, tag);
            if (byDefault.Count == 0)
                throw new HubException($"{repo}: several GGUF files and none is {DefaultTag}; name one as {repo}:TAG (available: {string.Join(", ", Tags(ggufs))})");
            return Gguf(byDefault, tag);
        }
        if (ggufs.Count == 0)
            throw new HubException($"{repo}: :{tag} names a GGUF quant, but the repo has no .gguf files");
        var matching = Matching(ggufs, tag);
        if (matching.Count == 0)
            throw new HubException($"{repo}: no GGUF file for quant tag {tag} (available: {string.Join(", ", Tags(ggufs))})");
        return Gguf(matching, tag);
    }

    private static FileSelection Gguf(List<string> shards, string? tag) =>
        new(WeightFormat.Gguf, shards, shards[0], tag);   // shards sort as -00001-of-…, -00002-of-…: the first opens the set

    // The files of one variant that carry the tag; when two variants do (X-Q4_K_M and X-UD-Q4_K_M), the shorter name.
    private static List<string> Matching(List<string> ggufs, string tag)
    {
        var rx = new Regex($@"(?<![A-Za-z0-9]){Regex.Escape(tag)}(?![A-Za-z0-9_])", RegexOptions.IgnoreCase);
        return ggufs.Where(p => rx.IsMatch(p)).GroupBy(VariantOf)
            .OrderBy(g => g.Key.Length).ThenBy(g => g.Key, StringComparer.Ordinal)
            .FirstOrDefault()?.ToList() ?? [];
    }

    /// <summary>The quant tags found in GGUF names (llama.cpp's type names: Q4_K_M, IQ2_XXS, Q8_0, F16, ...).</summary>
    public static IReadOnlyList<string> Tags(IEnumerable<string> paths) =>
        paths.Select(p => TagOf(Path.GetFileName(p))).OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase)
             .Order(StringComparer.OrdinalIgnoreCase).ToList();

    private static string? TagOf(string name) { var m = TagPattern.Match(name); return m.Success ? m.Value.ToUpperInvariant() : null; }

    private static readonly Regex TagPattern = new(
        @"(?<![A-Za-z0-9])(I?Q[1-8]_(K|[0-9])(_(XXS|XS|XL|S|M|L|NL))?|IQ[1-4]_(XXS|XS|S|M|NL)|TQ[12]_0|MXFP4|BF16|F16|F32)(?![A-Za-z0-9])",
        RegexOptions.IgnoreCase);

    // A split GGUF's shards share a name up to -0000k-of-0000n (llama.cpp's gguf-split naming).
    private static string VariantOf(string path) => ShardSuffix.Replace(path, ".gguf");
    private static readonly Regex ShardSuffix = new(@"-\d{5}-of-\d{5}\.gguf$", RegexOptions.IgnoreCase);

    private static string Preview(IReadOnlyCollection<string> paths) =>
        paths.Count == 0 ? "none" : string.Join(", ", paths.Take(8)) + (paths.Count > 8 ? $", ... ({paths.Count} in all)" : "");
}
