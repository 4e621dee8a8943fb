using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Platform;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Cli;

/// <summary>
/// `bench --llama-bench PATH [--ik-bench PATH] [--batched-bench PATH] [--ik-batched-bench PATH] [--rounds 3]`: our
/// bench and the peers' benches on the same GGUF file, alternately in one sitting, so every claim is a ratio measured
/// under the same load. Each round runs every engine once (ours first in even rounds, last in odd ones, so a drift in
/// the host's load does not favour one side), each engine in its own process (each loads the file and warms up, as
/// llama-bench does), and measures the read bandwidth after the round. The table gives, per test, the median over all
/// rounds' samples with min–max, ours ÷ each peer, and for decoding the share of the bandwidth roofline (weights read
/// per token × tokens/s ÷ bandwidth; weights only, the KV cache read at depth is not counted).
/// <para>
/// The peers are llama.cpp's `llama-bench` (`-o json`; with `-d N` for depth), ik_llama.cpp's `llama-bench` run
/// plain and with its run-time repack `-rtr 1` (no `-d`: a test at depth uses its `-gp N,TG`, generation after an
/// N-token prompt; it has no prompt-processing-at-depth test), and either project's `llama-batched-bench` for
/// aggregate decoding of several sequences (its markdown table; S_TG is the aggregate tokens/s). The binaries are the
/// user's own builds (none ships with this project).
/// </para>
/// </summary>
internal static class BenchCompare
{
    internal static System.CommandLine.Option[] Options() =>
    [
        Opt.Text("--llama-bench", null, "compare with llama.cpp's llama-bench at this path", "PATH"),
        Opt.Text("--ik-bench", null, "compare with ik_llama.cpp's llama-bench at this path", "PATH"),
        Opt.Text("--batched-bench", null, "compare batched decoding with llama.cpp's llama-batched-bench (needs -b LIST)", "PATH"),
        Opt.Text("--ik-batched-bench", null, "compare batched decoding with ik_llama.cpp's llama-batched-bench", "PATH"),
        Opt.Int("--rounds", 3, "comparison rounds, engines alternating", 1, 100),
        Opt.Text("--ours", null, "our binary or deepseek-cpu.dll to compare (default: this program)", "PATH"),
        Opt.Text("--peer-args", null, "extra arguments for the peers' benches", "\"ARGS\""),
    ];

    internal static bool Requested(CliArgs a) => a.Has("--llama-bench") || a.Has("--ik-bench") || a.Has("--batched-bench") || a.Has("--ik-batched-bench");

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>One run of one program: how to start it and how to read the samples it prints.</summary>
    private sealed record Job(string Engine, string Program, string[] Args, Func<string, IEnumerable<Sample>> Parse);

    /// <summary>Tokens/s samples of one test (a label such as "tg128", "tg32 @ d4096", "tg128 x4") by one engine.</summary>
    internal sealed record Sample(string Test, IReadOnlyList<double> Rates);

    internal static string Label(string kind, int tokens, int depth = 0, int batch = 0) =>
        $"{kind}{tokens}{(depth > 0 ? $" @ d{depth}" : "")}{(batch > 0 ? $" x{batch}" : "")}";

    public static int Run(CliArgs a)
    {
        string model = Path.GetFullPath(a.Req("--model"));
        if (!File.Exists(model)) throw new UsageException($"bench: --model '{model}' does not exist (the comparison needs a GGUF file every engine reads)");
        int pp = a.Int("--prompt-tokens"), tg = a.Int("--gen-tokens");
        int reps = a.Given("--repetitions") ? a.Int("--repetitions") : 2, rounds = a.Int("--rounds");
        int threads = a.Int("--threads");
        if (threads == 0) threads = WorkerPool.Shared.ThreadCount;
        int[] depths = IntList(a, "--depth", [0]);
        int[]? batches = a.Has("--batch") ? IntList(a, "--batch", [1]) : null;
        string[] peerArgs = (a.Str("--peer-args") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

        string? llama = Binary(a, "--llama-bench", "llama.cpp's llama-bench"), ik = Binary(a, "--ik-bench", "ik_llama.cpp's llama-bench");
        string? batched = Binary(a, "--batched-bench", "llama.cpp's llama-batched-bench"), ikBatched = Binary(a, "--ik-batched-bench", "ik_llama.cpp's llama-batched-bench");
        if ((batched != null || ikBatched != null) && batches == null)
            throw new UsageException("bench: --batched-bench compares batched decoding: give the sequence counts with -b, e.g. -b 1,2,4,8");
        var (oursProgram, oursPrefix) = Ours(a.Str("--ours"));

        // Ours: one process per depth (and per batch size), the same options as a plain bench run.
        var ours = new List<Job>();
        string[] oursCommon = ["-m", model, "-t", Str(threads), "-r", Str(reps), "--json", "--no-bandwidth"];
        if (a.Given("--warmup") && a.Str("--warmup") is { } w) oursCommon = [.. oursCommon, "--warmup", w];
        if (a.Given("--cache-type") && a.Str("--cache-type") is { } ct) oursCommon = [.. oursCommon, "--cache-type", ct];
        if (a.Has("--no-mmap")) oursCommon = [.. oursCommon, "--no-mmap"];
        var peers = new List<Job>();
        if (llama != null || ik != null)
            foreach (int d in depths)
            {
                ours.Add(new("ours", oursProgram, [.. oursPrefix, "bench", .. oursCommon, "-p", Str(pp), "-n", Str(tg), .. (d > 0 ? new[] { "-d", Str(d) } : [])], json => ParseOurs(json)));
                string[] common = ["-m", model, "-t", Str(threads), "-r", Str(reps), "-o", "json", .. peerArgs];
                if (llama != null) peers.Add(new("llama.cpp", llama, [.. common, "-p", Str(pp), "-n", Str(tg), .. (d > 0 ? new[] { "-d", Str(d) } : [])], ParseLlamaBench));
                if (ik == null) continue;
                string[] ikTests = d == 0 ? ["-p", Str(pp), "-n", Str(tg)] : ["-p", "0", "-n", "0", "-gp", $"{d},{tg}"];
                if (d > 0 && tg == 0) continue;
                peers.Add(new("ik_llama.cpp", ik, [.. common, .. ikTests], ParseLlamaBench));
                peers.Add(new("ik_llama.cpp -rtr", ik, [.. common, .. ikTests, "-rtr", "1"], ParseLlamaBench));
            }
        if (batches != null && (batched != null || ikBatched != null))
        {
            // llama-batched-bench needs a prompt per sequence (a 0-token batch fails); ours starts from an empty cache.
            const int prompt = 32;
            foreach (int b in batches) ours.Add(new("ours", oursProgram, [.. oursPrefix, "bench", .. oursCommon, "-p", "0", "-n", Str(tg), "-b", Str(b)], json => ParseOurs(json, batched: true)));
            string[] common = ["-m", model, "-t", Str(threads), "-c", Str(batches.Max() * (prompt + tg) + 64), "-npp", Str(prompt), "-ntg", Str(tg), "-npl", string.Join(",", batches), .. peerArgs];
            if (batched != null) peers.Add(new("llama.cpp", batched, common, ParseBatchedBench));
            if (ikBatched != null) peers.Add(new("ik_llama.cpp", ikBatched, common, ParseBatchedBench));
        }
        if (ours.Count == 0) throw new UsageException("bench: nothing to compare (give --llama-bench/--ik-bench, or -b with --batched-bench)");

        Console.WriteLine($"comparison on {model}: {rounds} rounds, engines alternating, {threads} threads, {reps} repetitions per run");
        foreach (var j in ours.Concat(peers)) Console.WriteLine($"  {j.Engine,-18} {Quote(j.Program)} {string.Join(' ', j.Args.Select(Quote))}");
        if (ik != null && depths.Any(d => d > 0)) Console.WriteLine("  (ik_llama.cpp's llama-bench has no -d: at depth it runs -gp DEPTH,TG, generation only)");

        var results = new Results();
        var bandwidths = new List<double>();
        long bytesPerToken = 0;
        var commits = new SortedDictionary<string, string>();
        for (int r = 0; r < rounds; r++)
        {
            var order = r % 2 == 0 ? ours.Concat(peers) : peers.AsEnumerable().Reverse().Concat(ours.AsEnumerable().Reverse());
            foreach (var job in order)
            {
                Console.Error.WriteLine($"round {r + 1}/{rounds}: {job.Engine} {string.Join(' ', job.Args.Where(x => x != model))}");
                var (code, stdout, stderr) = RunProcess(job.Program, job.Args);
                if (code != 0)
                {
                    string last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
                    Console.WriteLine($"  {job.Engine} failed (exit {code}): {last}");
                    continue;
                }
                try
                {
                    foreach (var s in job.Parse(stdout)) results.Add(job.Engine, s.Test, s.Rates);
                    if (job.Engine == "ours" && bytesPerToken == 0) bytesPerToken = OursBytesPerToken(stdout);
                    if (job.Parse == ParseLlamaBench && BuildCommit(stdout) is { } commit) commits[job.Engine] = commit;
                }
                catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
                {
                    Console.WriteLine($"  {job.Engine}: could not read its output ({e.Message})");
                }
            }
            bandwidths.Add(MemoryBandwidth.Measure(threads));
            Console.Error.WriteLine(string.Format(Inv, "round {0}/{1}: read bandwidth {2:F1} GB/s", r + 1, rounds, bandwidths[^1]));
            if (r + 1 < rounds) Console.Error.Write(Render(results, Median(bandwidths), bytesPerToken));   // so far, in case the sitting is cut short
        }

        Console.WriteLine();
        Console.Write(Render(results, Median(bandwidths), bytesPerToken));
        Console.WriteLine(string.Format(Inv, "read bandwidth after each round ({0} threads): {1} GB/s; {2:F1} MB of weights read per generated token",
            threads, string.Join(", ", bandwidths.Select(b => b.ToString("F1", Inv))), bytesPerToken / 1e6));
        if (commits.Count > 0) Console.WriteLine($"peer builds (llama-bench build_commit): {string.Join(", ", commits.Select(c => $"{c.Key} {c.Value}"))}");
        return 0;
    }

    /// <summary>Samples per engine and test, in the order they first appear (the order of the table's rows and columns).</summary>
    internal sealed class Results
    {
        private readonly Dictionary<(string engine, string test), List<double>> _samples = new();
        public List<string> Engines { get; } = new();
        public List<string> Tests { get; } = new();

        public void Add(string engine, string test, IEnumerable<double> rates)
        {
            if (!Engines.Contains(engine)) Engines.Add(engine);
            if (!Tests.Contains(test)) Tests.Add(test);
            if (!_samples.TryGetValue((engine, test), out var list)) _samples[(engine, test)] = list = new();
            list.AddRange(rates);
        }

        public IReadOnlyList<double>? Samples(string engine, string test) => _samples.TryGetValue((engine, test), out var l) && l.Count > 0 ? l : null;
    }

    /// <summary>
    /// The comparison as a markdown table: one row per test, per engine the median tokens/s over every sample (min–max),
    /// for a single-sequence decoding test also its share of the roofline, then ours ÷ each peer and ours ÷ the best
    /// peer (medians; above 1 ours is faster).
    /// </summary>
    internal static string Render(Results results, double bandwidthGBs, long bytesPerToken)
    {
        var peers = results.Engines.Where(e => e != "ours").ToList();
        var sb = new StringBuilder();
        sb.Append("| test | ").AppendJoin(" | ", results.Engines).Append(" | ").AppendJoin(" | ", peers.Select(p => $"ours ÷ {p}")).AppendLine(" | ours ÷ best peer |");
        sb.Append("|---|").Append(string.Concat(Enumerable.Repeat("---:|", results.Engines.Count + peers.Count + 1))).AppendLine();
        foreach (string test in results.Tests)
        {
            bool decode = test.StartsWith("tg", StringComparison.Ordinal) && !test.Contains(" x", StringComparison.Ordinal);
            sb.Append("| ").Append(test).Append(" | ");
            sb.AppendJoin(" | ", results.Engines.Select(e => results.Samples(e, test) is { } xs
                ? string.Format(Inv, "{0:F2} ({1:F2}–{2:F2}){3}", Median(xs), xs.Min(), xs.Max(),
                    decode && bandwidthGBs > 0 && bytesPerToken > 0 ? string.Format(Inv, ", {0:F0}% of roofline", 100 * Median(xs) * bytesPerToken / (bandwidthGBs * 1e9)) : "")
                : "–"));
            var ours = results.Samples("ours", test);
            double best = double.NaN;
            foreach (string p in peers)
            {
                var theirs = results.Samples(p, test);
                if (theirs != null && !(Median(theirs) <= best)) best = Median(theirs);
                sb.Append(" | ").Append(ours != null && theirs != null ? (Median(ours) / Median(theirs)).ToString("F2", Inv) : "–");
            }
            sb.Append(" | ").Append(ours != null && !double.IsNaN(best) ? (Median(ours) / best).ToString("F2", Inv) : "–").AppendLine(" |");
        }
        return sb.ToString();
    }

    /// <summary>
    /// Our `bench --json`: the pp and tg samples, labelled as llama-bench labels its tests; a run of the batched
    /// comparison labels its decoding with the number of sequences, "tg128 x1" included, as llama-batched-bench's rows.
    /// </summary>
    internal static IEnumerable<Sample> ParseOurs(string json, bool batched = false)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        int depth = root.TryGetProperty("depth", out var d) ? d.GetInt32() : 0;
        var list = new List<Sample>();
        var pp = root.GetProperty("pp");
        if (pp.GetProperty("tokens").GetInt32() > 0) list.Add(new(Label("pp", pp.GetProperty("tokens").GetInt32(), depth), Rates(pp.GetProperty("samples"))));
        var tg = root.GetProperty("tg");
        int batch = tg.GetProperty("batch").GetInt32();
        if (tg.GetProperty("tokens").GetInt32() > 0)
            list.Add(new(Label("tg", tg.GetProperty("tokens").GetInt32(), depth, batched ? batch : 0), Rates(tg.GetProperty("samples"))));
        return list;
    }

    private static long OursBytesPerToken(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("weight_bytes_per_token").GetInt64();
    }

    /// <summary>
    /// llama-bench's `-o json`: an array with one object per test, its token counts (n_prompt, n_gen, n_depth) and
    /// samples_ts, the tokens/s of each repetition. Mainline labels a test at depth with n_depth; ik_llama.cpp's `-gp`
    /// test (generation after a prompt) has both n_prompt and n_gen, and its rates count only the generated tokens.
    /// </summary>
    internal static IEnumerable<Sample> ParseLlamaBench(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var list = new List<Sample>();
        foreach (var t in doc.RootElement.EnumerateArray())
        {
            int np = t.GetProperty("n_prompt").GetInt32(), ng = t.GetProperty("n_gen").GetInt32();
            int depth = t.TryGetProperty("n_depth", out var d) ? d.GetInt32() : 0;
            var rates = Rates(t.GetProperty("samples_ts"));
            if (ng == 0) list.Add(new(Label("pp", np, depth), rates));
            else if (np == 0) list.Add(new(Label("tg", ng, depth), rates));
            else if (t.TryGetProperty("test", out var label) && label.GetString()?.Contains('@') == true) list.Add(new(Label("tg", ng, np), rates));
            // else: a combined pp+tg test (-pg), which the comparison does not ask for
        }
        return list;
    }

    /// <summary>The build commit each llama-bench run reports (its `build_commit` field), for the record.</summary>
    internal static string? BuildCommit(string json)
    {
        using var doc = JsonDocument.Parse(json);
        foreach (var t in doc.RootElement.EnumerateArray())
            if (t.TryGetProperty("build_commit", out var c) && c.GetString() is { } commit && commit != "unknown") return commit;   // "unknown" outside a git checkout
        return null;
    }

    /// <summary>
    /// llama-batched-bench's markdown table: rows "| PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |";
    /// S_TG is B·TG ÷ T_TG, the aggregate decoding rate of B sequences. Log lines around the table are skipped.
    /// </summary>
    internal static IEnumerable<Sample> ParseBatchedBench(string text)
    {
        var list = new List<Sample>();
        foreach (string line in text.Split('\n'))
        {
            var cells = line.Trim().Trim('|').Split('|', StringSplitOptions.TrimEntries);
            if (!line.TrimStart().StartsWith('|') || cells.Length != 10 || !int.TryParse(cells[0], NumberStyles.Integer, Inv, out _)) continue;
            int tg = int.Parse(cells[1], Inv), b = int.Parse(cells[2], Inv);
            list.Add(new(Label("tg", tg, 0, b), [double.Parse(cells[7], NumberStyles.Float, Inv)]));
        }
        if (list.Count == 0) throw new FormatException("no result rows in llama-batched-bench's output");
        return list;
    }

    private static double[] Rates(JsonElement array) => array.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    internal static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private static int[] IntList(CliArgs a, string name, int[] def)
    {
        if (a.Str(name) is not { } s) return def;
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.Integer, Inv, out values[i]) || values[i] < 0 || values[i] > (1 << 20))
                throw new UsageException($"bench: option {name} expects a comma-separated list of integers in 0..{1 << 20}, got '{s}'");
        return values;
    }

    /// <summary>The path given for a peer's binary, which must exist: the peers are the user's own builds.</summary>
    private static string? Binary(CliArgs a, string option, string what)
    {
        if (a.Str(option) is not { } path) return null;
        if (Directory.Exists(path)) throw new UsageException($"bench: {option} '{path}' is a folder; give the path of {what} itself (e.g. build/bin/{Path.GetFileName(what.Split(' ')[^1])})");
        if (!File.Exists(path)) throw new UsageException($"bench: {option} '{path}' does not exist; build {what} (see README, Performance) and give the path of the binary");
        return Path.GetFullPath(path);
    }

    /// <summary>How to start our own bench: --ours PATH (an apphost or a .dll), else this very program.</summary>
    private static (string program, string[] prefix) Ours(string? path)
    {
        if (path != null)
        {
            if (!File.Exists(path)) throw new UsageException($"bench: --ours '{path}' does not exist (give a deepseek-cpu binary or deepseek-cpu.dll)");
            path = Path.GetFullPath(path);
            return path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ("dotnet", [path]) : (path, []);
        }
        string self = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(self) == "dotnet" ? (self, [Path.Combine(AppContext.BaseDirectory, "deepseek-cpu.dll")]) : (self, []);
    }

    private static (int code, string stdout, string stderr) RunProcess(string program, string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string x in args) psi.ArgumentList.Add(x);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    private static string Str(int v) => v.ToString(Inv);
    private static string Quote(string s) => s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./,=:+@".Contains(c)) ? s : $"'{s.Replace("'", "'\\''")}'";
}
