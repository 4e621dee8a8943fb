using System.Globalization;
using DeepSeekCpu;
using DeepSeekCpu.Tools;
using DeepSeekCpu.Weights;

// deepseek-cpu-tools synth --shape NAME --type TYPE -o OUT.gguf
// Writes a model of a real shape with random weights, so speed can be measured at real sizes without real weights.
try
{
    if (args.Length < 1 || args[0] != "synth")
    {
        Console.Error.WriteLine("usage: deepseek-cpu-tools synth --shape " + string.Join("|", SyntheticShapes.Names) + " --type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q4_k_m|q5_k|q5_k_m|q6_k|q2_k|q3_k|iq4_nl|iq4_xs -o OUT.gguf|OUT_DIR [--layers N] [--mtp] [--seed S] [--tokenizer HF_TOKENIZER_DIR]");
        Console.Error.WriteLine("       (q4_k_m, q5_k_m: llama.cpp's Q4_K_M / Q5_K_M mix on the dense shapes: output, and attn_v/ffn_down of some layers, Q6_K; the rest Q4_K / Q5_K)");
        Console.Error.WriteLine("       deepseek-cpu-tools synth --shape r1 --mix iq1_s|iq1_m|iq2_xxs|iq2_xs|iq2_s|iq3_xxs|iq3_s|q2_k -o OUT.gguf [--layers N]   (a dynamic R1 mix: routed experts in that type, attention/dense Q4_K, shared experts Q6_K; random valid blocks)");
        return 2;
    }
    string? shape = null, type = null, output = null, tokenizer = null, mix = null; int? layers = null; ulong seed = 1; bool mtp = false;
    for (int i = 1; i < args.Length; i++)
    {
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option {args[i]} needs a value");
        switch (args[i])
        {
            case "--shape": shape = Next(); break;
            case "--type": type = Next(); break;
            case "--mix": mix = Next(); break;
            case "-o" or "--out": output = Next(); break;
            case "--layers": layers = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--seed": seed = ulong.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--tokenizer": tokenizer = Next(); break;
            case "--mtp": mtp = true; break;   // deepseek2 GGUF: one multi-token-prediction layer after the main ones
            default: throw new ArgumentException($"unknown argument '{args[i]}'");
        }
    }
    if (shape == null || (type == null && mix == null) || output == null) throw new ArgumentException("synth needs --shape, --type (or --mix) and -o");
    var tensorMix = mix == null ? null : new TensorMix(SyntheticShapes.ParseType(mix));
    // q4_k_m / q5_k_m: the base type with llama.cpp's Q6_K choices (SyntheticWriter.Write's kM)
    bool kM = type?.ToLowerInvariant() is "q4_k_m" or "q5_k_m";
    var dtype = type == null ? tensorMix!.Attention : kM ? SyntheticShapes.ParseType(type![..4]) : SyntheticShapes.ParseType(type);
    if (tensorMix == null && DeepSeekCpu.Kernels.IQuantRandom.Handles(dtype))
        throw new ArgumentException($"--type {type}: only routed experts are written in that type (use --mix {type})");
    var s = SyntheticShapes.Get(shape);
    if (layers is int l) s = s with { Layers = l };
    var sw = System.Diagnostics.Stopwatch.StartNew();
    var vocabMeta = tokenizer == null ? null : DeepSeekCpu.Tokenizers.GgufVocabulary.FromHuggingFace(tokenizer, s.Vocab);
    // OUT ending in .gguf: llama.cpp layout (any type); otherwise a Hugging Face folder (f32/f16/bf16).
    long bytes = output.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
        ? SyntheticWriter.Write(s, dtype, output, seed, vocabMeta, tensorMix, mtp, kM)
        : mtp || kM ? throw new ArgumentException($"--mtp and --type {type} are written to GGUF files only (OUT.gguf)") : SyntheticHfWriter.Write(s, dtype, output, seed);
    Console.Error.WriteLine($"wrote {output}: {s.Name}, {(kM ? type!.ToUpperInvariant() : tensorMix == null ? dtype : $"{tensorMix.Experts} experts + {tensorMix.Attention}/{tensorMix.Shared}")}, {bytes / 1e9:F2} GB in {sw.Elapsed.TotalSeconds:F1} s");
    return 0;
}
catch (Exception e) when (e is ArgumentException or ModelFormatException or IOException or FormatException or NotSupportedException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
