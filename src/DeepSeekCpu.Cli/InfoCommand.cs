using System.CommandLine;
using System.Globalization;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    private static Command InfoCommand() => Cmd("info", "describe a model and the memory it needs", Info, [
        ModelOption("the model (required)"),
        CtxOption(min: 1),
        TokenizerOption(),
        ChatTemplateOption(),
        Opt.Int("--parallel", 1, "slots the memory plan holds KV caches for", 1, 64),
        CacheTypeOption(),
        RepackOption(),
        .. Backends.Options(),
    ]);

    private static int Info(CliArgs a)
    {
        string path = ModelPath(a.Req("--model"));
        var format = ModelLoader.Detect(path);
        var (devices, dtype) = Backends.Parse(a, "info");
        var options = a.LoadOptions() with { Graph = null };   // the plan is computed without loading libtorch
        using var model = ModelLoader.Load(path, options);
        var (c, w) = (model.Config, model.Weights);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"model:          {path}");
        Console.WriteLine($"format:         {format}");
        Console.WriteLine($"architecture:   {c.Architecture} ({TerminalText.Safe(c.ModelType)})");
        Console.WriteLine($"layers:         {c.NumLayers}");
        Console.WriteLine($"hidden:         {c.HiddenSize}");
        if (c.IsMla)
        {
            Console.WriteLine($"attention:      MLA, {c.NumHeads} heads, q_lora_rank {(c.QLoraRank?.ToString() ?? "none")}, kv_lora_rank {c.KvLoraRank}, nope {c.QkNopeHeadDim} + rope {c.QkRopeHeadDim}, v {c.VHeadDim}");
            Console.WriteLine($"ffn:            dense {c.IntermediateSize} for the first {c.FirstKDenseReplace} layers; MoE {c.NRoutedExperts} routed x {c.MoeIntermediateSize} (top {c.NumExpertsPerTok}, {c.ScoringFunc}, groups {c.NGroup} keep {c.TopkGroup}) + {c.NSharedExperts} shared");
            if (c.NumNextnPredictLayers > 0) Console.WriteLine($"config:         num_nextn_predict_layers = {c.NumNextnPredictLayers} (multi-token prediction; run --mtp drafts with it)");
        }
        else if (c.V4 is { } v4c)
        {
            Console.WriteLine($"attention:      {c.NumHeads} query heads over one kv head of {c.HeadDim} (rope {c.QkRopeHeadDim}), sliding window {v4c.SlidingWindow} + sinks, compress_ratios [{string.Join(",", v4c.CompressRatios)}], o_groups {v4c.OGroups} x {v4c.OLoraRank}, hc_mult {v4c.HcMult}");
            Console.WriteLine($"ffn:            MoE {c.NRoutedExperts} routed x {c.MoeIntermediateSize} (top {c.NumExpertsPerTok}, {c.ScoringFunc}; first {v4c.NumHashLayers} layers hash-routed) + {c.NSharedExperts} shared, swiglu_limit {v4c.SwigluLimit}, experts {v4c.ExpertDtype ?? "bf16"}");
        }
        else
        {
            Console.WriteLine($"attention:      {c.NumHeads} heads / {c.NumKvHeads} kv heads, head dim {c.HeadDim}{(c.AttentionBias ? ", q/k/v bias" : "")}{(c.QkNorm ? ", q/k RMSNorm per head" : "")}");
            Console.WriteLine($"ffn:            SwiGLU {c.IntermediateSize}");
        }
        Console.WriteLine($"vocab:          {c.VocabSize}");
        Console.WriteLine($"context:        {c.MaxPositionEmbeddings}");
        Console.WriteLine($"chat template:  {Template(a, path)}");
        Console.WriteLine(string.Format(inv, "rope:           theta {0}{1}{2}", c.RopeTheta,
            c.RopeScaling is { } s ? $", {s.Type} x{s.Factor.ToString(inv)} (original {s.OriginalMaxPositionEmbeddings})" : "",
            c.RopeInterleaved ? ", interleaved pairs" : ", rotate-half"));
        if (c.V4 is { } v4r) Console.WriteLine(string.Format(inv, "v4 rope:        window-only layers theta {0} without YaRN; compressed layers theta {1} with YaRN's frequencies, no mscale", c.RopeTheta, v4r.CompressRopeTheta));
        else if (!c.IsMla && c.RopeScaling is { Type: "yarn" } y)
            // R1-0528-Qwen3-8B's config also has "attn_factor" (0.878); transformers and llama.cpp do not read it (DEEPSEEK.md)
            Console.WriteLine(string.Format(inv, "yarn:           cos/sin x {0:F4} ({1}); a config \"attn_factor\" is not applied, as in transformers and llama.cpp",
                y.AttentionFactor ?? 0.1 * Math.Log(y.Factor) + 1, y.AttentionFactor != null ? "attention_factor" : "0.1 ln(factor) + 1"));
        long parameters = w.Tensors.Values.Where(t => !t.Name.EndsWith("_scale_inv")).Sum(t => t.ElementCount);
        Console.WriteLine(string.Format(inv, "parameters:     {0:N0} ({1})", parameters, parameters >= 1e9 ? $"{parameters / 1e9:F2} B" : $"{parameters / 1e6:F2} M"));
        Console.WriteLine(string.Format(inv, "weight bytes:   {0:N0} ({1})", w.TotalBytes, w.TotalBytes >= 1L << 30 ? $"{w.TotalBytes / (double)(1L << 30):F2} GiB" : $"{w.TotalBytes / (double)(1L << 20):F2} MiB"));
        if (model is DeepSeekCpu.Models.DeepSeek.DeepSeekModel ds && ds.MtpLayers > 0) Console.WriteLine("mtp:            " + MtpSummary(ds));
        var byType = w.Tensors.Values.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.ByteLength));
        Console.WriteLine("tensor types:   " + string.Join(", ", byType.Select(g => $"{g.Key} x{g.Count()}")));
        if (model is DeepSeekCpu.Models.DeepSeek.V4.DeepSeekV4Model v4e) Console.WriteLine($"routed experts: {v4e.ExpertDescription}");
        if (model is DeepSeekCpu.Models.DeepSeek.V4.DeepSeekV4Model v4) Console.WriteLine($"kv cache:       {v4.CacheDescription}");
        else Console.WriteLine(string.Format(inv, "kv cache:       {0:N0} bytes per token ({1} values per layer per token, {2})",
            model.KvBytesPerToken, c.KvValuesPerTokenPerLayer, KvCache.Name(options.CacheType)));
        if (devices != null)
        {
            Console.WriteLine($"torch placement: {dtype} weights on {string.Join(", ", devices)} (consecutive layers, split by bytes)");
            foreach (var line in Backends.Placement(c, w, devices, dtype, a.Str("--torch-weights"))) Console.WriteLine("  " + line);
        }
        PrintMemoryPlan(model, a.IntOrNull("--ctx") ?? Math.Min(c.MaxPositionEmbeddings, 4096), a.Int("--parallel"), options);
        return 0;
    }

    /// <summary>Which template renders chats: --chat-template FILE's, the model's own (named), or none.</summary>
    private static string Template(CliArgs a, string path)
    {
        ITokenizer tokenizer;
        try { tokenizer = LocalModel.LoadTokenizerOnly(a.Str("--tokenizer") ?? path); }
        catch (Exception e) when (e is ModelFormatException or InvalidFileException) { return $"unknown (the tokenizer does not load: {TerminalText.Safe(e.Message.Split('\n')[0], 200)})"; }
        if (a.Str("--chat-template") is { } file)
            return $"{file} ({(ChatTemplateFile.Load(file, tokenizer) is ChatTemplateFile ? "JSON form" : "DeepSeek Jinja template")}, --chat-template)";
        return ChatTemplateFile.Describe(tokenizer);
    }

    /// <summary>
    /// What serving <paramref name="parallel"/> sequences of <paramref name="ctx"/> tokens needs: the mapped weights
    /// (paged in from the files, shared with the page cache), copies made at load, the KV caches when every slot is full
    /// (they grow 256 tokens at a time, so a server starts with none), scratch, and whether it fits this machine.
    /// </summary>
    private static void PrintMemoryPlan(ILanguageModel model, int ctx, int parallel, LoadOptions options)
    {
        var inv = CultureInfo.InvariantCulture;
        var c = model.Config;
        ctx = Math.Min(ctx, c.MaxPositionEmbeddings);
        long mapped = model.Weights.TotalBytes, resident = model.Weights.ResidentBytes;
        long kv = model.KvBytesPerToken * ctx * parallel;
        long scratch = model switch
        {
            DeepSeekCpu.Models.DeepSeek.DeepSeekModel d => d.ScratchBytes,
            DeepSeekCpu.Models.Llama.LlamaModel l => l.ScratchBytes,
            DeepSeekCpu.Models.DeepSeek.V4.DeepSeekV4Model v => v.ScratchBytes + v.WindowBytes * parallel,
            _ => 0,
        } + 8L * ctx * (c.IsMla ? c.QkRopeHeadDim : c.HeadDim) / 2;          // + rope cos/sin table
        long total = mapped + resident + kv + scratch;
        long machine = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;      // physical memory, or the container's limit
        Console.WriteLine($"memory plan:    --ctx {ctx} --parallel {parallel} --cache-type {KvCache.Name(options.CacheType)}");
        Console.WriteLine($"  weights:      {Size(mapped)} mapped + {Size(resident)} copies made at load");
        if (model.Weights.InterleavedBytes > 0)
            Console.WriteLine($"  of which:     {Size(model.Weights.InterleavedBytes)} rows interleaved for decoding (--repack off: none)");
        Console.WriteLine(string.Format(inv, "  kv cache:     {0:N0} bytes per token x {1} x {2} = {3} when full (grown {4} tokens at a time)",
            model.KvBytesPerToken, ctx, parallel, Size(kv), KvCache.ChunkRows));
        Console.WriteLine($"  scratch:      {Size(scratch)}");
        Console.WriteLine($"  total:        {Size(total)}; this machine: {Size(machine)} -> {(total <= machine ? "fits" : "does not fit")}");
    }

    private static string Size(long b) => string.Format(CultureInfo.InvariantCulture, "{0:F2} {1}",
        b >= 1L << 30 ? b / (double)(1L << 30) : b / (double)(1L << 20), b >= 1L << 30 ? "GiB" : "MiB");

    /// <summary>The MTP layer: what of it the weights hold and its bytes (loaded by run --mtp, not here).</summary>
    private static string MtpSummary(DeepSeekCpu.Models.DeepSeek.DeepSeekModel m)
    {
        string p = $"model.layers.{m.Config.NumLayers}.";
        var own = new[] { "enorm", "hnorm", "eh_proj", "shared_head.norm" };
        var missing = own.Where(n => !m.Weights.Contains(p + n + ".weight")).ToArray();
        long bytes = m.Weights.Tensors.Values.Where(t => t.Name.StartsWith(p, StringComparison.Ordinal)).Sum(t => t.ByteLength);
        string shared = (m.Weights.Contains(p + "embed_tokens.weight") ? "" : "; embedding from the main model")
            + (m.Weights.Contains(p + "shared_head.head.weight") ? "" : "; head from the main model");
        return $"{m.MtpLayers} multi-token-prediction layer(s); layer {m.Config.NumLayers}: {Size(bytes)}"
            + (missing.Length > 0 ? $", incomplete (no {string.Join(", ", missing)}): run --mtp cannot use it"
                : $" (enorm, hnorm, eh_proj, MLA + {(m.Config.IsMoeLayer(m.Config.NumLayers) ? "MoE" : "MLP")} block, shared head{shared}); run --mtp drafts with it");
    }
}
