using System.Diagnostics;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// The token-level state of one generation, step by step: sampling (with the repetition history), stop tokens, the
/// token budget, UTF-8-safe text and the reasoning/answer split of R1 (text up to "&lt;/think&gt;" is reasoning).
/// Whoever runs the model (<see cref="ChatEngine"/>'s scheduler, for every front end) hands it each new row of logits
/// and feeds back <see cref="NextToken"/>.
/// </summary>
internal sealed class Sequence
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

    /// <summary>
    /// Constrains the answer to a grammar (structured output; <see cref="GrammarConstraint"/>). Reasoning stays free:
    /// the grammar applies from the first answer token, after "&lt;/think&gt;" in an R1 model.
    /// </summary>
    public Grammar? Grammar { init => _constraint = value == null ? null : new GrammarConstraint(value, _tok); }

    /// <summary>
    /// Most reasoning tokens; when they are spent, the reasoning is closed with "\n&lt;/think&gt;\n\n" (forced tokens),
    /// as llama.cpp's --reasoning-budget does, and the answer follows. Null: no limit.
    /// </summary>
    public int? ReasoningBudget { get; init; }

    /// <summary>Alternatives reported with each token's log-probability (OpenAI top_logprobs); -1: no log-probabilities.</summary>
    public int TopLogprobs { get; init; } = -1;

    /// <summary>The log-probabilities of the token sampled last (when <see cref="TopLogprobs"/> ≥ 0).</summary>
    public TokenLogprob? LastLogprob { get; private set; }

    private GrammarConstraint? _constraint;
    private readonly Queue<int> _forced = new();
    private int _reasoningTokens;

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
        if (_kind == TextKind.Reasoning && ReasoningBudget is int budget && _reasoningTokens >= budget && _forced.Count == 0)
            foreach (int t in _tok.Encode("\n" + R1ChatTemplate.ThinkClose + "\n\n")) _forced.Enqueue(t);
        var constraint = _kind == TextKind.Answer ? _constraint : null;
        if (!_forced.TryDequeue(out int next) && !Sample(logits, constraint, out next))
        {
            Finish(output, FinishReason.Stop);   // the grammar is complete, or no token fits it
            return;
        }
        if (TopLogprobs >= 0) LastLogprob = TokenLogprob.Of(logits, next, TopLogprobs);
        if (constraint != null && next != _thinkOpen && next != _thinkClose) constraint.Accept(next);
        if (_kind == TextKind.Reasoning) _reasoningTokens++;
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

    /// <summary>
    /// Draws the next token; under a grammar, the draw is kept when it fits, and otherwise drawn again from the
    /// logits masked to what fits (the same distribution as masking first: a kept draw has probability p/P(fits) either
    /// way). False when nothing may follow (the grammar is complete and there is no end token) or nothing fits.
    /// </summary>
    private bool Sample(Span<float> logits, GrammarConstraint? constraint, out int next)
    {
        _sampler.Penalize(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_history));
        if (constraint?.IsFinished == true)
        {
            next = _tok.EosId ?? -1;
            return next >= 0;
        }
        next = _sampler.Pick(logits);
        if (constraint == null || constraint.Allows(next)) return true;
        constraint.Mask(logits);
        next = _sampler.Pick(logits);
        return constraint.Allows(next);
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
