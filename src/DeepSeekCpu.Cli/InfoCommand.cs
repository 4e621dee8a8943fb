using System.Globalization;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    private static int Info(string[] args)
    {
        var a = new CliArgs("info", args, ["--model"], [], Aliases);
        string path = ModelPath(a.Req("--model"));
        var format = ModelLoader.Detect(path);
        using var model = ModelLoader.Load(path);
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
            if (c.NumNextnPredictLayers > 0) Console.WriteLine($"config:         num_nextn_predict_layers = {c.NumNextnPredictLayers} (multi-token prediction; not used for decoding)");
        }
        else
        {
            Console.WriteLine($"attention:      {c.NumHeads} heads / {c.NumKvHeads} kv heads, head dim {c.HeadDim}{(c.AttentionBias ? ", q/k/v bias" : "")}");
            Console.WriteLine($"ffn:            SwiGLU {c.IntermediateSize}");
        }
        Console.WriteLine($"vocab:          {c.VocabSize}");
        Console.WriteLine($"context:        {c.MaxPositionEmbeddings}");
        Console.WriteLine(string.Format(inv, "rope:           theta {0}{1}{2}", c.RopeTheta,
            c.RopeScaling is { } s ? $", {s.Type} x{s.Factor.ToString(inv)} (original {s.OriginalMaxPositionEmbeddings})" : "",
            c.RopeInterleaved ? ", interleaved pairs" : ", rotate-half"));
        long parameters = w.Tensors.Values.Where(t => !t.Name.EndsWith("_scale_inv")).Sum(t => t.ElementCount);
        Console.WriteLine(string.Format(inv, "parameters:     {0:N0} ({1})", parameters, parameters >= 1e9 ? $"{parameters / 1e9:F2} B" : $"{parameters / 1e6:F2} M"));
        Console.WriteLine(string.Format(inv, "weight bytes:   {0:N0} ({1})", w.TotalBytes, w.TotalBytes >= 1L << 30 ? $"{w.TotalBytes / (double)(1L << 30):F2} GiB" : $"{w.TotalBytes / (double)(1L << 20):F2} MiB"));
        if (model is DeepSeekCpu.Models.DeepSeek.DeepSeekModel ds && ds.SkippedMtpLayers > 0)
            Console.WriteLine($"mtp:            {ds.SkippedMtpLayers} multi-token-prediction layer(s) in the weights, not loaded into the main model");
        var byType = w.Tensors.Values.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.ByteLength));
        Console.WriteLine("tensor types:   " + string.Join(", ", byType.Select(g => $"{g.Key} x{g.Count()}")));
        Console.WriteLine(string.Format(inv, "kv cache:       {0:N0} bytes per token ({1} values per layer per token, float32)",
            model.KvBytesPerToken, c.KvValuesPerTokenPerLayer));
        return 0;
    }
}
