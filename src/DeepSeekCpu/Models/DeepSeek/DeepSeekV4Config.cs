using System.Text.Json;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// The fields DeepSeek-V4 (<c>DeepseekV4ForCausalLM</c>, model_type deepseek_v4) adds to a DeepSeek config, named as in
/// its config.json (DeepSeek-V4-Flash; the official inference/model.py ModelArgs name in brackets where it differs). The shared ones
/// (hidden_size, heads, head_dim, q_lora_rank, qk_rope_head_dim, experts, index_*) stay in <see cref="ModelConfig"/>.
/// </summary>
/// <param name="CompressRatios">Per layer: 0 = sliding window only, 4 = compressed sparse attention (overlapping compressor + indexer top-k), larger = heavily compressed attention.</param>
/// <param name="CompressRopeTheta">RoPE base of the compressed layers (they also use YaRN); window-only layers use rope_theta.</param>
/// <param name="SlidingWindow">Tokens of the sliding window every layer attends to [window_size].</param>
/// <param name="OGroups">Grouped low-rank output projection: o_groups groups …</param>
/// <param name="OLoraRank">… of rank o_lora_rank.</param>
/// <param name="HcMult">Manifold-constrained hyper-connections: hc_mult residual streams …</param>
/// <param name="HcSinkhornIters">… mixed by a matrix made doubly stochastic in this many Sinkhorn iterations …</param>
/// <param name="HcEps">… with this epsilon.</param>
/// <param name="NumHashLayers">The first num_hash_layers MoE layers route by a token-id table (tid2eid) [n_hash_layers].</param>
/// <param name="SwigluLimit">SwiGLU clamp: up to ±limit, gate to ≤ limit.</param>
/// <param name="ExpertDtype">Routed experts' storage ("fp4": packed e2m1 with E8M0 scales per 32 inputs).</param>
internal sealed record DeepSeekV4Config(int[] CompressRatios, double CompressRopeTheta, int SlidingWindow, int OGroups,
    int OLoraRank, int HcMult, int HcSinkhornIters, double HcEps, int NumHashLayers, double SwigluLimit, string? ExpertDtype)
{
    /// <summary>Reads and checks the V4 fields of a config.json (one line naming the field on bad input).</summary>
    internal static DeepSeekV4Config Read(ModelConfig.JsonFields j, JsonElement root, string path)
    {
        int layers = j.ReqInt("num_hidden_layers"), mtp = j.Int("num_nextn_predict_layers") ?? 0;
        if (!root.TryGetProperty("compress_ratios", out var cr) || cr.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException($"{path}: field \"compress_ratios\" must be an array of integers (one per layer)");
        var ratios = new List<int>();
        foreach (var v in cr.EnumerateArray())
            ratios.Add(v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int r) && r >= 0 ? r
                : throw new ModelFormatException($"{path}: field \"compress_ratios\" must hold integers ≥ 0"));
        // one entry per layer, MTP layers included (the released Flash config lists 43 + 1)
        if (ratios.Count != layers && ratios.Count != layers + mtp)
            throw new ModelFormatException($"{path}: compress_ratios has {ratios.Count} entries, expected num_hidden_layers ({layers}) or with the MTP layers ({layers + mtp})");
        var c = new DeepSeekV4Config([.. ratios], j.Dbl("compress_rope_theta") ?? 160000, j.ReqInt("sliding_window"),
            j.ReqInt("o_groups"), j.ReqInt("o_lora_rank"), j.ReqInt("hc_mult"), j.ReqInt("hc_sinkhorn_iters"),
            j.Dbl("hc_eps") ?? 1e-6, j.Int("num_hash_layers") ?? 0, j.Dbl("swiglu_limit") ?? 0, j.Str("expert_dtype"));
        if (c.NumHashLayers < 0 || c.NumHashLayers > layers)
            throw new ModelFormatException($"{path}: num_hash_layers = {c.NumHashLayers} is out of range (expected 0..{layers})");
        if (c.ExpertDtype is not (null or "fp4" or "fp8" or "bf16"))
            throw new ModelFormatException($"{path}: expert_dtype \"{c.ExpertDtype}\" is not supported (expected fp4, fp8 or bf16)");
        return c;
    }
}
