using System.Text.RegularExpressions;

namespace DeepSeekCpu.Hub;

/// <summary>
/// A model named the way llama.cpp's -hf and Ollama accept it: <c>org/repo</c>, <c>org/repo@revision</c> (branch,
/// tag or commit) and, for GGUF repos, <c>org/repo:Q4_K_M</c> (the quant tag in the file name); both may combine as
/// <c>org/repo@rev:TAG</c>.
/// </summary>
internal sealed partial record ModelReference(string Repo, string Revision, string? Tag)
{
    public const string DefaultRevision = "main";

    public override string ToString() => Repo + (Revision == DefaultRevision ? "" : "@" + Revision) + (Tag == null ? "" : ":" + Tag);

    /// <summary>The cache folder name Hugging Face uses: models--ORG--NAME.</summary>
    public string CacheFolderName => "models--" + Repo.Replace("/", "--");

    /// <summary>
    /// Parses a repo id. Paths are not repo ids: anything starting with '/', '.', '~', holding a backslash or "..",
    /// more than one '/' before '@', or ending in a model file's extension (so a mistyped file name is reported as
    /// a missing file, not looked up on the hub).
    /// </summary>
    public static bool TryParse(string text, out ModelReference reference)
    {
        reference = null!;
        if (string.IsNullOrWhiteSpace(text) || text[0] is '/' or '.' or '~' || text.Contains('\\') || text.Contains(".."))
            return false;
        foreach (var ext in (string[])[".gguf", ".bin", ".safetensors", ".json", ".pt", ".pth"])
            if (text.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) return false;
        var m = Pattern().Match(text);
        if (!m.Success) return false;
        reference = new ModelReference(m.Groups["repo"].Value,
            m.Groups["rev"].Success ? m.Groups["rev"].Value : DefaultRevision,
            m.Groups["tag"].Success ? m.Groups["tag"].Value : null);
        return true;
    }

    public static ModelReference Parse(string text) =>
        TryParse(text, out var r) ? r : throw new HubException($"'{text}' is not a model name (expected org/repo, org/repo@revision or org/repo:QUANT)");

    // Repo names as the hub allows them: letters, digits, '-', '_', '.'; revisions may hold '/' (refs/pr/1).
    [GeneratedRegex(@"^(?<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(@(?<rev>[\w./-]+))?(:(?<tag>[A-Za-z0-9_.-]+))?$")]
    private static partial Regex Pattern();
}
