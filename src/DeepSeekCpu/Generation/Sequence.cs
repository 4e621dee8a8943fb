using System.Diagnostics;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// The token-level state of one generation, step by step: sampling (with the repetition history), stop tokens, the
/// token budget, UTF-8-safe text and the reasoning/answer split of R1 (text up to "&lt;/think&gt;" is reasoning).
/// Whoever runs the model (<see cref="ChatEngine"/>'s scheduler, for every front end) hands it each new row of logits
/// and feeds back <see cref="NextToken"/>.
/// </summary>
public sealed class Sequence
{
    private readonly ITokenizer _tok;
    private readonly int? _thinkOpen, _thinkClose;
    private readonly Sampler _sampler;
    private readonly List<int> _history;
    private readonly StreamingDecoder _decoder;
    private readonly int _maxTokens;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _genStart;
    private TextKind _kind;

    /// <summary>Where the token count, timings and finish reason go.</summary>
    public GenerationResult Result { get; }
    /// <summary>True once a stop token, the token budget or <see cref="Finish"/> ended it.</summary>
    public bool Finished { get; private set; }
    /// <summary>The token sampled last, to be fed to the model next while not <see cref="Finished"/>.</summary>
    public int NextToken { get; private set; } = -1;

    public Sequence(ITokenizer tokenizer, IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling,
        GenerationResult? result = null, bool startsInReasoning = false)
    {
        _tok = tokenizer;
        _thinkOpen = tokenizer.TokenToId("<think>");
        _thinkClose = tokenizer.TokenToId("</think>");
        _sampler = new Sampler(sampling);
        _history = new List<int>(prompt);
        _decoder = new StreamingDecoder(tokenizer);
        _maxTokens = maxTokens;
        _kind = startsInReasoning ? TextKind.Reasoning : TextKind.Answer;
        Result = result ?? new GenerationResult();
        Result.FinishReason = FinishReason.Length;
        if (maxTokens < 1) Finished = true;
    }

    /// <summary>Call when the prompt has been processed (prompt-time statistics).</summary>
    public void PromptDone()
    {
        Result.PromptTime = _clock.Elapsed;
        _genStart = _clock.Elapsed;
    }

    /// <summary>
    /// Samples the next token from <paramref name="logits"/> (the row after the last fed token; rows past the
    /// tokenizer's vocabulary are masked) and appends the text it completes to <paramref name="output"/>.
    /// </summary>
    public void Step(Span<float> logits, List<GeneratedToken> output)
    {
        if (Finished) return;
        // Embedding rows past the tokenizer's vocabulary (padding, e.g. 151936 rows for 151665 Qwen tokens) are
        // not tokens: never sample them.
        if (_tok.VocabSize < logits.Length) logits[_tok.VocabSize..].Fill(float.NegativeInfinity);
        int next = _sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_history));
        Result.CompletionTokens++;
        if (Result.CompletionTokens == 1) Result.TimeToFirstToken = _clock.Elapsed;
        _history.Add(next);
        NextToken = next;
        Result.GenerationTime = _clock.Elapsed - _genStart;
        if (_tok.StopIds.Contains(next)) { Finish(output, FinishReason.Stop); return; }

        if (next == _thinkOpen) _kind = TextKind.Reasoning;
        if (next == _thinkOpen || next == _thinkClose)
        {
            // The markers themselves are structure, not text: flush what was pending and switch sides.
            string pending = _decoder.Flush();
            if (pending.Length > 0) output.Add(new GeneratedToken(-1, pending, _kind));
            if (next == _thinkClose) _kind = TextKind.Answer;
            output.Add(new GeneratedToken(next, "", _kind));
        }
        else output.Add(new GeneratedToken(next, _decoder.Append(next), _kind));
        if (Result.CompletionTokens >= _maxTokens) Finish(output, FinishReason.Length);
    }

    /// <summary>Ends the sequence (stop, budget, context end or cancellation): flushes held-back text.</summary>
    public void Finish(List<GeneratedToken> output, FinishReason reason)
    {
        if (Finished) return;
        Finished = true;
        Result.FinishReason = reason;
        string rest = _decoder.Flush();
        if (rest.Length > 0) output.Add(new GeneratedToken(-1, rest, _kind));
        Result.GenerationTime = _clock.Elapsed - _genStart;
    }
}
