using System.Diagnostics;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>Which part of an R1 answer a piece of text belongs to.</summary>
public enum TextKind { Answer, Reasoning }

/// <summary>One generated token and the text it completes (may be empty while a UTF-8 character is split).</summary>
public readonly record struct GeneratedToken(int Id, string Text, TextKind Kind);

/// <summary>Timing of one generation, for the CLI's statistics and the server's usage numbers.</summary>
public sealed class GenerationStats
{
    public int PromptTokens { get; internal set; }
    public int GeneratedTokens { get; internal set; }
    public TimeSpan PromptTime { get; internal set; }
    public TimeSpan GenerationTime { get; internal set; }
    public TimeSpan TimeToFirstToken { get; internal set; }
    public string FinishReason { get; internal set; } = "length";
    public double PromptTokensPerSecond => PromptTokens / Math.Max(1e-9, PromptTime.TotalSeconds);
    /// <summary>Decode speed: tokens after the first over the time after the first.</summary>
    public double GenerationTokensPerSecond => GeneratedTokens <= 1 ? 0 : (GeneratedTokens - 1) / Math.Max(1e-9, GenerationTime.TotalSeconds);
}

/// <summary>
/// The decode loop: prompt processing in batches, then one token at a time through the KV cache, sampling,
/// stop tokens, UTF-8-safe streaming and the reasoning/answer split of R1 (text up to "&lt;/think&gt;" is reasoning).
/// </summary>
public sealed class Generator
{
    private readonly ILanguageModel _model;
    private readonly ITokenizer _tok;
    private readonly int? _thinkOpen, _thinkClose;

    /// <summary>Prompt tokens per forward batch (bounds scratch memory for long prompts).</summary>
    public int PromptBatch { get; init; } = 512;

    public Generator(ILanguageModel model, ITokenizer tokenizer)
    {
        _model = model; _tok = tokenizer;
        _thinkOpen = tokenizer.TokenToId("<think>");
        _thinkClose = tokenizer.TokenToId("</think>");
    }

    /// <summary>
    /// Feeds <paramref name="prompt"/> after what <paramref name="session"/> already holds and yields generated tokens
    /// until a stop token, <paramref name="maxTokens"/>, the context end or cancellation.
    /// <paramref name="startsInReasoning"/>: the prompt already opened "&lt;think&gt;" (R1's generation prompt).
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(IModelSession session, IReadOnlyList<int> prompt, int maxTokens,
        SamplingOptions sampling, GenerationStats? stats = null, bool startsInReasoning = false,
        CancellationToken cancel = default)
    {
        stats ??= new GenerationStats();
        var sampler = new Sampler(sampling);
        int vocab = _model.Config.VocabSize;
        var logits = new float[vocab];
        var history = new List<int>(prompt);
        var decoder = new StreamingDecoder(_tok);
        var kind = startsInReasoning ? TextKind.Reasoning : TextKind.Answer;
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty (no tokens)");
        if (session.Position + prompt.Count >= session.ContextLength)
            throw new ArgumentException($"the prompt ({prompt.Count} tokens) does not fit in the context ({session.ContextLength} tokens, {session.Position} used)");

        var sw = Stopwatch.StartNew();
        var ids = prompt is int[] arr ? arr : prompt.ToArray();
        for (int i = 0; i < ids.Length; i += PromptBatch)
        {
            if (cancel.IsCancellationRequested) { stats.FinishReason = "cancelled"; stats.PromptTime = sw.Elapsed; yield break; }
            int len = Math.Min(PromptBatch, ids.Length - i);
            session.Forward(ids.AsSpan(i, len), logits);
        }
        stats.PromptTokens = ids.Length;
        stats.PromptTime = sw.Elapsed;
        var genStart = sw.Elapsed;
        stats.FinishReason = "length";

        int[] one = new int[1];
        for (int n = 0; n < maxTokens; n++)
        {
            if (cancel.IsCancellationRequested) { stats.FinishReason = "cancelled"; break; }
            // Embedding rows past the tokenizer's vocabulary (padding, e.g. 151936 rows for 151665 Qwen tokens) are
            // not tokens: never sample them.
            if (_tok.VocabSize < vocab) logits.AsSpan(_tok.VocabSize).Fill(float.NegativeInfinity);
            int next = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
            stats.GeneratedTokens++;
            if (n == 0) stats.TimeToFirstToken = sw.Elapsed;
            history.Add(next);
            if (_tok.StopIds.Contains(next)) { stats.FinishReason = "stop"; stats.GenerationTime = sw.Elapsed - genStart; break; }

            if (next == _thinkOpen) kind = TextKind.Reasoning;
            if (next == _thinkOpen || next == _thinkClose)
            {
                // The markers themselves are structure, not text: flush what was pending and switch sides.
                string pending = decoder.Flush();
                if (pending.Length > 0) yield return new GeneratedToken(-1, pending, kind);
                if (next == _thinkClose) kind = TextKind.Answer;
                yield return new GeneratedToken(next, "", kind);
            }
            else yield return new GeneratedToken(next, decoder.Append(next), kind);

            stats.GenerationTime = sw.Elapsed - genStart;
            if (session.Position >= session.ContextLength) { stats.FinishReason = "length"; break; }
            one[0] = next;
            session.Forward(one, logits);
        }
        string rest = decoder.Flush();
        if (rest.Length > 0) yield return new GeneratedToken(-1, rest, kind);
        stats.GenerationTime = sw.Elapsed - genStart;
    }
}
