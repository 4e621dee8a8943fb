using System.Text.Json;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Server;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Fuzzing;

/// <summary>
/// One fuzz target per reader of files and requests that come from strangers (issue 11). Each takes the raw bytes
/// of an input, puts them where the reader expects them (a file in a scratch folder), runs the reader the way the
/// engine does and then uses what it returned (tensor rows, an encoded text, a rendered conversation).
/// An input may load, or fail with the project's clean error: a <see cref="ModelFormatException"/> or
/// <see cref="InvalidFileException"/> of one line that names the file, or for a request an <see cref="ApiError"/>
/// with a 4xx status (and a <see cref="JsonException"/>, which the server answers as 400). Anything else escapes as
/// an exception, which the fuzzer (tools/DeepSeekCpu.Fuzz, SharpFuzz + AFL++) counts as a crash and the regression
/// test (FuzzCorpusTests, over tests/fuzz-corpus) as a failure.
/// This file is compiled into both.
/// </summary>
public static class FuzzTargets
{
    /// <summary>Target names; each is also the folder of its inputs under tests/fuzz-corpus.</summary>
    public static readonly string[] Names =
        ["gguf", "safetensors", "safetensors-index", "tokenizer-json", "config-json", "llama2c-checkpoint", "llama2c-tokenizer", "server-request"];

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/>; returns "loaded" or the clean error's message.</summary>
    public static string Run(string target, byte[] input, string scratch)
    {
        Directory.CreateDirectory(scratch);
        return target switch
        {
            "gguf" => FileTarget(scratch, "model.gguf", input, Gguf),
            "safetensors" => FileTarget(scratch, "model.safetensors", input, path => Safetensors(Path.GetDirectoryName(path)!)),
            "safetensors-index" => SafetensorsIndex(scratch, input),
            "tokenizer-json" => FileTarget(scratch, "tokenizer.json", input, TokenizerJson),
            "config-json" => FileTarget(scratch, "config.json", input, path => ModelConfig.FromHfJson(path).Validate(path)),
            "llama2c-checkpoint" => FileTarget(scratch, "model.bin", input, Llama2cModel),
            "llama2c-tokenizer" => Llama2cTokenizerTarget(scratch, input),
            "server-request" => ServerRequest(input),
            _ => throw new ArgumentException($"unknown fuzz target '{target}' (expected one of {string.Join(", ", Names)})"),
        };
    }

    /// <summary>Thrown when an input got an error that is not the clean one-line error expected of a reader.</summary>
    public sealed class UncleanError(string message, Exception inner) : Exception(message, inner);

    private const string Text = "Once upon a time, héllo wörld 123 😀 <think>\n</think><|im_end|>\t  end.";

    private static string FileTarget(string scratch, string name, byte[] input, Action<string> read)
    {
        foreach (var f in Directory.GetFiles(scratch)) File.Delete(f);
        string path = Path.Combine(scratch, name);
        File.WriteAllBytes(path, input);
        return Clean(() => read(path), path);
    }

    /// <summary>The error discipline: the expected exception types, one line, naming the file.</summary>
    private static string Clean(Action read, string? file)
    {
        try { read(); return "loaded"; }
        catch (Exception e) when (e is ModelFormatException or InvalidFileException)
        {
            if (e.Message.Contains('\n') || e.Message.Contains('\r'))
                throw new UncleanError($"error message of more than one line: {e.Message}", e);
            if (file != null && !e.Message.Contains(file, StringComparison.Ordinal) && !e.Message.Contains(Path.GetDirectoryName(file)!, StringComparison.Ordinal))
                throw new UncleanError($"error message does not name the file {file}: {e.Message}", e);
            return e.Message;
        }
    }

    // ---- model files ----

    private static void Gguf(string path)
    {
        var (config, weights, _, gguf) = ModelLoader.OpenWeights(path);
        using (weights)
        {
            UseTensors(weights);
            if (gguf!.Metadata.ContainsKey("tokenizer.ggml.tokens"))
                UseTokenizer(TokenizerLoader.FromGgufMetadata(gguf.Metadata, path));
            _ = config.KvValuesPerTokenPerLayer;
        }
    }

    private static void Safetensors(string dir)
    {
        using var weights = ModelWeights.OpenSafetensorsFolder(dir);
        UseTensors(weights);
    }

    /// <summary>
    /// model.safetensors.index.json from the input beside one real shard, "model-00001-of-00001.safetensors".
    /// Whatever loads must come from inside the folder: the index must not lead the reader elsewhere.
    /// </summary>
    private static string SafetensorsIndex(string scratch, byte[] input)
    {
        string dir = Path.Combine(scratch, "model");
        Directory.CreateDirectory(dir);
        string shard = Path.Combine(dir, "model-00001-of-00001.safetensors");
        if (!File.Exists(shard)) WriteSmallSafetensors(shard);
        string index = Path.Combine(dir, "model.safetensors.index.json");
        File.WriteAllBytes(index, input);
        return Clean(() =>
        {
            using var weights = ModelWeights.OpenSafetensorsFolder(dir);
            foreach (var (name, t) in weights.Tensors)
                if (Path.GetDirectoryName(Path.GetFullPath(t.File)) != Path.GetFullPath(dir))
                    throw new UncleanError($"tensor {name} was read from {t.File}, outside the model's folder", new());
            UseTensors(weights);
        }, index);
    }

    /// <summary>A valid two-tensor safetensors file (also a seed of the safetensors target).</summary>
    public static void WriteSmallSafetensors(string path)
    {
        var w = new SafeTensorsWriter();
        w.Add("model.embed_tokens.weight", DType.F32, [4, 8], 4 * 8 * 4, s => s.Write(new byte[4 * 8 * 4]));
        w.Add("model.norm.weight", DType.BF16, [8], 8 * 2, s => s.Write(new byte[8 * 2]));
        w.Write(path);
    }

    private static void Llama2cModel(string path)
    {
        var (config, weights, _, _) = ModelLoader.OpenWeights(path);
        using (weights)
        {
            config.Validate(path);
            UseTensors(weights);
        }
    }

    /// <summary>Reads the first and last row of every matrix, as the model's kernels would, and every vector.</summary>
    private static void UseTensors(ModelWeights weights)
    {
        foreach (var (name, t) in weights.Tensors)
        {
            if (t.Rank == 2 && t.Shape[0] is > 0 and <= int.MaxValue && t.Shape[1] is > 0 and <= 1 << 20)
            {
                var w = weights.RawMatrix(name, (int)t.Shape[0], (int)t.Shape[1]);
                var row = new float[w.Cols];
                Dequantize.RowOf(w, 0, row);
                Dequantize.RowOf(w, w.Rows - 1, row);
            }
            else if (t.Rank == 1 && t.Type == DType.F32)
            {
                var v = t.AsF32();
                if (v.Length > 0) _ = v[0] + v[^1];
            }
        }
    }

    // ---- tokenizers ----

    private static void TokenizerJson(string path) => UseTokenizer(HfBpeTokenizer.FromTokenizerJson(path));

    private static void UseTokenizer(HfBpeTokenizer tok)
    {
        int[] ids = tok.Encode(Text);
        _ = tok.Decode(ids);
    }

    /// <summary>The first two bytes give the vocabulary size (260..2307, from the checkpoint in real use), the rest is tokenizer.bin.</summary>
    private static string Llama2cTokenizerTarget(string scratch, byte[] input)
    {
        int vocab = input.Length >= 2 ? 260 + (input[0] | input[1] << 8) % 2048 : 512;
        return FileTarget(scratch, "tokenizer.bin", input.Length >= 2 ? input[2..] : input, path =>
        {
            var tok = Llama2cTokenizer.Load(path, vocab);
            int[] ids = tok.Encode(Text, addSpecial: true);
            _ = tok.Decode(ids);
        });
    }

    // ---- server requests ----

    /// <summary>
    /// The body of a request as the server reads it: the first byte chooses /v1/chat/completions (even) or
    /// /v1/completions (odd); the rest is the JSON body, parsed and mapped to a generation request, and a chat's
    /// messages rendered with the R1 template.
    /// </summary>
    private static string ServerRequest(byte[] input)
    {
        bool chat = input.Length == 0 || input[0] % 2 == 0;
        var body = input.Length > 0 ? input.AsMemory(1) : Memory<byte>.Empty;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body); }
        catch (JsonException e) { return "400 " + e.Message; }   // the server answers this with a 400
        try
        {
            using (doc)
            {
                var req = ApiRequest.Parse(doc, chat, "stories260K", ServerLimits.Default with { MaxPromptChars = 131_072 });
                if (chat) _ = R1ChatTemplate.R1("<s>").Render(req.Messages!);
                _ = req.Generation.MaxTokens;
            }
            return "loaded";
        }
        catch (ApiError e) when (e.Status is >= 400 and < 500)
        {
            if (e.Message.Contains('\n')) throw new UncleanError($"error message of more than one line: {e.Message}", e);
            return $"{e.Status} {e.Message}";
        }
    }
}
