using System.CommandLine;
using System.Diagnostics;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// deepseek-cpu quantize -m MODEL --type TYPE -o OUT.gguf: writes a GGUF that llama.cpp reads (GgufExport: names,
    /// metadata, Q/K permutation, expert stacking), with the model's vocabulary. Matrices become TYPE (or Q8_0 when
    /// their row length is not a multiple of TYPE's block), vectors stay F32. DeepSeek V2/V3 models (HF, FP8
    /// included, or GGUF) become "deepseek2" with stacked experts and the combined attn_kv_b; the MTP layers are left out.
    /// </summary>
    private static Command QuantizeCommand() => Cmd("quantize", "write a GGUF llama.cpp can read", QuantizeCmd, [
        ModelOption("the model to convert (required)"),
        Opt.Text("--type", null, "the matrices' type (required)", "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|q2_k|q3_k|iq4_nl|iq4_xs|mxfp4"),
        Opt.Text("--out", null, "the GGUF file to write (required)", "OUT.gguf", ["-o"]),
    ]);

    private static int QuantizeCmd(CliArgs a)
    {
        string path = ModelPath(a.Req("--model")), outPath = a.Req("--out");
        var type = a.Req("--type").ToLowerInvariant() switch
        {
            "f32" => DType.F32, "f16" => DType.F16, "bf16" => DType.BF16,
            "q4_0" => DType.Q4_0, "q4_1" => DType.Q4_1, "q8_0" => DType.Q8_0, "q5_0" => DType.Q5_0,
            "q4_k" => DType.Q4_K, "q5_k" => DType.Q5_K, "q6_k" => DType.Q6_K,
            "q5_1" => DType.Q5_1, "q2_k" => DType.Q2_K, "q3_k" => DType.Q3_K, "iq4_nl" => DType.IQ4_NL, "iq4_xs" => DType.IQ4_XS,
            "mxfp4" => DType.MXFP4,
            var t => throw new UsageException($"quantize: --type '{t}' is unknown (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q2_k, q3_k, iq4_nl, iq4_xs, mxfp4)"),
        };
        if (Path.GetFullPath(outPath) == Path.GetFullPath(path)) throw new UsageException("quantize: --out must differ from the input model");
        var (c, weights, format, gguf) = ModelLoader.OpenWeights(path);
        using var _ = weights;
        var w = GgufExport.CreateWriter(c, type, Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(path)),
            GgufExport.HasSelectionBias(weights), path);

        // Vocabulary: copied from a GGUF source, converted from tokenizer.json for a Hugging Face folder.
        if (gguf != null)
        {
            foreach (var (k, v) in gguf.Metadata)
                if (k.StartsWith("tokenizer.")) w.Add(k, v is long l ? (object)(uint)l : v);
        }
        else if (format == ModelFormat.HuggingFace && File.Exists(Path.Combine(path, "tokenizer.json")))
        {
            foreach (var (k, v) in GgufVocabulary.FromHuggingFace(path, c.VocabSize)) w.Add(k, v);
        }
        else if (format == ModelFormat.HuggingFace)
            Console.Error.WriteLine($"warning: {path} has no tokenizer.json: the GGUF gets no vocabulary (llama.cpp needs one to run it)");
        else throw new UsageException("quantize: a llama2.c checkpoint has no GGUF vocabulary; give a Hugging Face folder or a GGUF file");

        GgufExport.AddTensors(w, c, weights, type);
        var sw = Stopwatch.StartNew();
        ProgressView.Run($"quantize {type}", p =>
        {
            // GgufWriter writes PATH.partial and renames it only when complete: its length is the progress.
            long total = w.TensorBytes;
            using var poll = new Timer(_ =>
            {
                try { p.Report(new Step(Math.Min(new FileInfo(outPath + ".partial").Length, total), total)); }
                catch (IOException) { }   // not created yet, or already renamed
            }, null, 250, 250);
            w.Write(outPath);
            return 0;
        });
        Console.Error.WriteLine($"wrote {outPath} ({new FileInfo(outPath).Length / 1e6:F1} MB) in {sw.Elapsed.TotalSeconds:F1} s: {WrittenTypes(outPath, type)}");
        return 0;
    }

    /// <summary>
    /// The types the file really holds, read back from it ("Q4_K x 146, Q8_0 x 24, F32 x 57"), and a warning for the
    /// matrices that did not get <paramref name="requested"/>: a row length that is not a multiple of its block falls
    /// back to Q8_0 or F16, as llama.cpp's quantize does (GgufExport.TargetFor).
    /// </summary>
    private static string WrittenTypes(string path, DType requested)
    {
        using var g = GgufFile.Open(path);
        var matrices = g.Tensors.Values.Where(t => t.Rank >= 2).ToList();
        var fallback = matrices.Where(t => t.Type != requested && t.Shape[^1] % requested.BlockSize() != 0).ToList();
        if (fallback.Count > 0 && requested is not (DType.F32 or DType.F16 or DType.BF16))
            Console.Error.WriteLine($"warning: quantize: {fallback.Count} of {matrices.Count} matrices are not {requested}: their rows " +
                $"({string.Join(", ", fallback.Select(t => t.Shape[^1]).Distinct().Order())} values) are not a multiple of its " +
                $"{requested.BlockSize()}-value blocks; they are {Tally(fallback)}");
        return Tally(g.Tensors.Values);
    }

    private static string Tally(IEnumerable<TensorView> tensors) =>
        string.Join(", ", tensors.GroupBy(t => t.Type).OrderByDescending(x => x.Count()).Select(x => $"{x.Key} x {x.Count()}"));
}
