using System.Diagnostics;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `tokenize [--reps 5]`: the llama2.c tokenizer (the demo model's tok512.bin) on long texts, to show its merge loop is
/// not quadratic (issue 11: 64K characters took 40 s with run.c's rescan per merge). Prints the median time per length;
/// time per character should stay about flat as the text doubles. The unit test counts the work instead of timing it.
/// </summary>
internal static class TokenizeBench
{
    public static int Run(string[] args)
    {
        int reps = Array.IndexOf(args, "--reps") is var i and >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : 5;
        string path = FindUp(Path.Combine("models", "stories260K", "tok512.bin"));
        var tok = Llama2cTokenizer.Load(path, 512);
        const string sentence = "Once upon a time there was a little girl. ";
        for (int w = 0; w < 3; w++) tok.Encode(string.Concat(Enumerable.Repeat(sentence, 400)));   // JIT and tiering first
        foreach (int copies in new[] { 400, 800, 1600, 3200 })
        {
            string text = string.Concat(Enumerable.Repeat(sentence, copies));
            var times = new double[reps];
            int tokens = 0;
            for (int r = 0; r < reps; r++)
            {
                var sw = Stopwatch.StartNew();
                tokens = tok.Encode(text).Length;
                times[r] = sw.Elapsed.TotalMilliseconds;
            }
            Array.Sort(times);
            double median = times[reps / 2];
            Console.WriteLine($"llama2.c encode {text.Length,7:N0} characters -> {tokens,6:N0} tokens: median {median,8:F1} ms ({median * 1000 / text.Length:F2} us/character)");
        }
        return 0;
    }

    private static string FindUp(string relative)
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (Path.Combine(d.FullName, relative) is var p && File.Exists(p)) return p;
        throw new FileNotFoundException($"{relative} not found above {AppContext.BaseDirectory}");
    }
}
