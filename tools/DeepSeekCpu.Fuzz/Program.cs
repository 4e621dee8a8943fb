using System.Text;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Fuzzing;
using DeepSeekCpu.Weights;
using SharpFuzz;

// DeepSeekCpu.Fuzz TARGET            run one target under afl-fuzz (SharpFuzz's fork server; once on stdin otherwise)
// DeepSeekCpu.Fuzz replay TARGET FILE...   run inputs without AFL and print what each got (for triage)
// DeepSeekCpu.Fuzz seeds DIR         write the seed corpus of every target into DIR/TARGET/
// The targets are FuzzTargets (tests/DeepSeekCpu.Tests/Hardening/FuzzTargets.cs); tools/fuzz.sh drives all of this.
// Everything on this thread: branches of another thread would interleave with the loop's in AFL's coverage map (edges
// are pairs of consecutive branches), which it counts as instability and as new paths that are only timing.
AppContext.SetSwitch(DeepSeekCpu.Tokenizers.HfBpeTokenizer.OneThreadSwitch, true);
if (args.Length >= 2 && args[0] == "seeds") { Seeds.Write(args[1]); return 0; }
if (args.Length >= 3 && args[0] == "replay")
{
    string scratch = Directory.CreateTempSubdirectory("dsc-replay-").FullName;
    int bad = 0;
    foreach (string file in args[2..])
    {
        try { Console.WriteLine($"{Path.GetFileName(file)}: {Flat(FuzzTargets.Run(args[1], File.ReadAllBytes(file), scratch))}"); }
        catch (Exception e) { bad++; Console.WriteLine($"{Path.GetFileName(file)}: CRASH {e.GetType().Name}: {Flat(e.Message)}\n{e.StackTrace}"); }
    }
    Directory.Delete(scratch, recursive: true);
    return bad == 0 ? 0 : 1;
}
if (args.Length >= 3 && args[0] == "stability")
{
    if (Environment.GetEnvironmentVariable("FUZZ_NO_WARMUP") != "1") WarmUp(args[1], Directory.CreateTempSubdirectory("dsc-warm-").FullName);
    return Stability.Run(args[1], args[2..]);
}
if (args.Length == 1 && FuzzTargets.Names.Contains(args[0]))
{
    // a folder per process in memory: every input is written to a file, as the readers take paths
    string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
    string scratch = Path.Combine(root, $"dsc-fuzz-{args[0]}-{Environment.ProcessId}");
    string target = args[0];
    WarmUp(target, scratch);
    Fuzzer.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        FuzzTargets.Run(target, buffer.ToArray(), scratch);
    });
    return 0;
}
Console.Error.WriteLine($"usage: DeepSeekCpu.Fuzz TARGET | replay TARGET FILE... | seeds DIR   (targets: {string.Join(", ", FuzzTargets.Names)})");
return 2;

// Static initializers (NFC tables, the byte-level alphabet, regex stand-ins) run once per process: inside the fuzzing
// loop their branches would be taken by whichever input came first after a start and by no run after it, which AFL
// counts as instability (the same input taking another course) and as new paths that are only history. So each
// target first runs over its own seeds, before AFL's loop; `stability` (below) found nothing else that varies.
static unsafe void WarmUp(string target, string scratch)
{
    if (SharpFuzz.Common.Trace.SharedMem == null)   // AFL's map is attached by Fuzzer.Run; until then, a private one
        SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.Marshal.AllocHGlobal(1 << 16);
    SharpFuzz.Common.Trace.OnBranch ??= (_, _) => { };   // called by every branch of the `stability` build
    string seeds = Directory.CreateTempSubdirectory("dsc-fuzz-seeds-").FullName;
    try
    {
        Seeds.Write(seeds);
        foreach (string file in Directory.GetFiles(Path.Combine(seeds, target)))
        {
            byte[] seed = File.ReadAllBytes(file);
            foreach (byte[] input in new[] { seed, seed[..(seed.Length / 2)], [] })   // and errors (their message cleanup)
                try { FuzzTargets.Run(target, input, scratch); } catch { }
        }
    }
    finally { Directory.Delete(seeds, recursive: true); }
}

static string Flat(string s) => s.Length > 200 ? s[..200].ReplaceLineEndings(" ") + "…" : s.ReplaceLineEndings(" ");

/// <summary>
/// Small valid inputs for every target, written from the formats' own writers and the project's fixtures: AFL starts
/// from these and mutates. Small files (a few KB) keep each execution fast.
/// </summary>
static class Seeds
{
    public static void Write(string dir)
    {
        string D(string target) => Directory.CreateDirectory(Path.Combine(dir, target)).FullName;

        // GGUF: a one-layer llama with F32, Q8_0 and Q4_0 matrices and a byte-level BPE vocabulary
        string[] tokens = ["H", "e", "l", "o", "Ġ", "w", "r", "d", "ll", "He", "<s>", "</s>", "<|im_end|>", "Ġw", "or", "ld"];
        int[] types = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 1, 1];
        string[] merges = ["l l", "H e", "Ġ w", "o r", "l d"];
        var gguf = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("llama.block_count", 1u).Add("llama.embedding_length", 32u).Add("llama.feed_forward_length", 64u)
            .Add("llama.attention.head_count", 4u).Add("llama.attention.head_count_kv", 2u).Add("llama.context_length", 64u)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f).Add("llama.rope.freq_base", 10000f)
            .Add("tokenizer.ggml.model", "gpt2").Add("tokenizer.ggml.pre", "qwen2")
            .Add("tokenizer.ggml.tokens", tokens).Add("tokenizer.ggml.token_type", types).Add("tokenizer.ggml.merges", merges)
            .Add("tokenizer.ggml.bos_token_id", 10u).Add("tokenizer.ggml.eos_token_id", 11u)
            .AddTensor("token_embd.weight", DType.F32, [16, 32], new byte[16 * 32 * 4])
            .AddTensor("output_norm.weight", DType.F32, [32], new byte[32 * 4])
            .AddTensor("blk.0.attn_q.weight", DType.Q8_0, [32, 32], new byte[DType.Q8_0.ByteCount(32 * 32)])
            .AddTensor("blk.0.attn_k.weight", DType.Q4_0, [16, 32], new byte[DType.Q4_0.ByteCount(16 * 32)])
            .AddTensor("blk.0.attn_norm.weight", DType.F32, [32], new byte[32 * 4]);
        gguf.Write(Path.Combine(D("gguf"), "llama-q8-q4.gguf"));
        new GgufWriter().Add("general.architecture", "qwen2").Add("qwen2.block_count", 1u).Add("qwen2.embedding_length", 8u)
            .Add("qwen2.attention.head_count", 2u).Add("qwen2.feed_forward_length", 16u).Add("qwen2.context_length", 16u)
            .AddTensor("token_embd.weight", DType.F16, [4, 8], new byte[4 * 8 * 2])
            .Write(Path.Combine(D("gguf"), "qwen2-f16.gguf"));

        // safetensors and its index
        FuzzTargets.WriteSmallSafetensors(Path.Combine(D("safetensors"), "small.safetensors"));
        File.WriteAllText(Path.Combine(D("safetensors-index"), "index.json"), """
            {"metadata": {"total_size": 144}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00001.safetensors",
             "model.norm.weight": "model-00001-of-00001.safetensors"}}
            """);

        // tokenizer.json: byte-level BPE with a Split pre-tokenizer, added tokens and a normalizer
        File.WriteAllText(Path.Combine(D("tokenizer-json"), "tokenizer.json"), """
            {"version": "1.0", "added_tokens": [{"id": 16, "content": "<|im_end|>", "special": true}, {"id": 17, "content": "<think>", "special": false}],
             "normalizer": {"type": "NFC"},
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+"}, "behavior": "Isolated", "invert": false},
               {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
             "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false, "ignore_merges": false,
               "vocab": {"O": 0, "n": 1, "c": 2, "e": 3, "Ġ": 4, "u": 5, "p": 6, "o": 7, "ce": 8, "On": 9, "Ġu": 10, "up": 11, "1": 12, "2": 13, "3": 14, "Ãĥ": 15},
               "merges": ["c e", "O n", "Ġ u", ["u", "p"]]}}
            """);
        File.WriteAllText(Path.Combine(D("tokenizer-json"), "bytelevel-only.json"), """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}}
            """);

        // config.json: the project's fixtures (Qwen2/Llama distills, DeepSeek-V3 tiny)
        string fixtures = FindUp(Path.Combine("tests", "fixtures"));
        int n = 0;
        foreach (var f in Directory.GetFiles(fixtures, "config.json", SearchOption.AllDirectories).Order())
            File.Copy(f, Path.Combine(D("config-json"), $"config-{n++}.json"), overwrite: true);

        // llama2.c: a one-layer checkpoint (dim 8, hidden 16, 2 heads, 1 kv head, vocab 16, seq_len 4) and tok512.bin
        using (var w = new BinaryWriter(File.Create(Path.Combine(D("llama2c-checkpoint"), "tiny.bin"))))
        {
            foreach (int v in new[] { 8, 16, 1, 2, 1, 16, 4 }) w.Write(v);
            // embedding 16x8, rms_att 8, wq 8x8, wk 4x8, wv 4x8, wo 8x8, rms_ffn 8, w1/w2/w3 16x8, rms_final 8, freq_cis 2x(4x2)
            int floats = 128 + 8 + 64 + 32 + 32 + 64 + 8 + 3 * 128 + 8 + 2 * 8;
            for (int i = 0; i < floats; i++) w.Write((i % 7) * 0.125f);
        }
        byte[] tok512 = File.ReadAllBytes(FindUp(Path.Combine("models", "stories260K", "tok512.bin")));
        // vocabulary size 512 in the target's two leading bytes: 260 + 252
        File.WriteAllBytes(Path.Combine(D("llama2c-tokenizer"), "tok512.bin"), [252, 0, .. tok512]);

        // requests: chat and completion bodies (first byte: even = chat, odd = completion)
        string[] chat =
        [
            """{"model": "stories260K", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0, "stop": ["\n", "end"], "stream": true, "stream_options": {"include_usage": true}}""",
            """{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}, {"role": "assistant", "content": "<think>x</think>Yes"}], "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 7, "repetition_penalty": 1.1, "max_completion_tokens": 4}""",
        ];
        string[] completion = ["""{"prompt": "Once upon a time", "max_tokens": 16, "stop": "x", "n": 1, "presence_penalty": 0, "logprobs": null}"""];
        n = 0;
        foreach (var c in chat) File.WriteAllBytes(Path.Combine(D("server-request"), $"chat-{n++}.json"), [0, .. Encoding.UTF8.GetBytes(c)]);
        foreach (var c in completion) File.WriteAllBytes(Path.Combine(D("server-request"), $"completion-{n++}.json"), [1, .. Encoding.UTF8.GetBytes(c)]);
    }

    private static string FindUp(string relative)
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (Path.Combine(d.FullName, relative) is var p && (File.Exists(p) || Directory.Exists(p))) return p;
        throw new FileNotFoundException($"{relative} not found above {AppContext.BaseDirectory}");
    }
}

/// <summary>
/// Which branches take a different course when the same input runs again in the same process: AFL's "stability"
/// (under 100% a persistent harness keeps reporting new paths that are only history, such as a cache filled by an
/// earlier input). Needs the build instrumented with SHARPFUZZ_ENABLE_ON_BRANCH_CALLBACK=1 (`tools/fuzz.sh
/// --stability TARGET`), whose every branch calls Trace.OnBranch with its id and method. Runs the inputs twice in
/// turn, each twice in a row, and counts per method the branches whose hit count falls in a different AFL bucket
/// (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+) from one run of an input to another.
/// </summary>
static class Stability
{
    public static unsafe int Run(string target, string[] files)
    {
        const int MapSize = 1 << 16;
        byte* map = (byte*)System.Runtime.InteropServices.Marshal.AllocHGlobal(MapSize);
        SharpFuzz.Common.Trace.SharedMem = map;
        var counts = new Dictionary<(int Id, string Method), int>();
        var gate = new object();
        int main = Environment.CurrentManagedThreadId;
        var elsewhere = new Dictionary<string, long>();   // branches taken on other threads: they interleave in AFL's map
        SharpFuzz.Common.Trace.OnBranch = (id, method) =>
        {
            lock (gate)
            {
                counts[(id, method)] = counts.GetValueOrDefault((id, method)) + 1;
                if (Environment.CurrentManagedThreadId != main) elsewhere[method] = elsewhere.GetValueOrDefault(method) + 1;
            }
        };
        string scratch = Directory.CreateTempSubdirectory("dsc-stability-").FullName;
        var runs = files.ToDictionary(f => f, _ => new List<Dictionary<(int, string), int>>());
        var maps = files.ToDictionary(f => f, _ => new List<byte[]>());   // AFL's own view: edge map, bucketed
        for (int pass = 0; pass < 2; pass++)
            foreach (string file in files)
                for (int again = 0; again < 2; again++)
                {
                    lock (gate) counts.Clear();
                    new Span<byte>(map, MapSize).Clear();
                    SharpFuzz.Common.Trace.PrevLocation = 0;
                    try { FuzzTargets.Run(target, File.ReadAllBytes(file), scratch); } catch { }
                    lock (gate) runs[file].Add(counts.ToDictionary(kv => kv.Key, kv => Bucket(kv.Value)));
                    var bytes = new byte[MapSize];
                    for (int i = 0; i < MapSize; i++) bytes[i] = (byte)Bucket(map[i]);
                    maps[file].Add(bytes);
                }
        Directory.Delete(scratch, recursive: true);
        var seen = new bool[MapSize]; var varied = new bool[MapSize];
        foreach (var list in maps.Values)
            for (int i = 0; i < MapSize; i++)
            {
                if (list.Any(m => m[i] != 0)) seen[i] = true;
                if (list.Any(m => m[i] != list[0][i])) varied[i] = true;
            }
        Console.WriteLine($"edge map: {seen.Count(b => b)} bytes set, {varied.Count(b => b)} varied between runs of one input");
        var unstable = new Dictionary<string, HashSet<int>>();
        int stableInputs = 0;
        foreach (var (file, course) in runs)
        {
            var keys = course.SelectMany(m => m.Keys).ToHashSet();
            bool stable = true;
            foreach (var key in keys)
            {
                int first = course[0].GetValueOrDefault(key);
                if (course.All(m => m.GetValueOrDefault(key) == first)) continue;
                stable = false;
                (unstable.TryGetValue(key.Item2, out var set) ? set : unstable[key.Item2] = []).Add(key.Item1);
            }
            if (stable) stableInputs++;
        }
        Console.WriteLine($"{stableInputs} of {files.Length} inputs ran the same course 4 times; methods with branches that varied:");
        foreach (var (method, ids) in unstable.OrderByDescending(kv => kv.Value.Count))
            Console.WriteLine($"{ids.Count,6}  {method}");
        Console.WriteLine($"branches taken on threads other than the fuzzing loop's: {elsewhere.Values.Sum()}");
        foreach (var (method, n) in elsewhere.OrderByDescending(kv => kv.Value).Take(20))
            Console.WriteLine($"{n,10}  {method}");
        return 0;
    }

    static int Bucket(int n) => n switch { <= 3 => n, <= 7 => 4, <= 15 => 5, <= 31 => 6, <= 127 => 7, _ => 8 };
}
