using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// The single-stream decode loop: prompt processing in batches, then one token at a time through the KV cache,
/// each step through a <see cref="Sequence"/>.
/// </summary>
public sealed class Generator
{
    private readonly ILanguageModel _model;
    private readonly ITokenizer _tok;

    /// <summary>Prompt tokens per forward batch (bounds scratch memory for long prompts).</summary>
    public int PromptBatch { get; init; } = 512;

    public Generator(ILanguageModel model, ITokenizer tokenizer)
    {
        _model = model; _tok = tokenizer;
    }

    /// <summary>
    /// Feeds <paramref name="prompt"/> after what <paramref name="session"/> already holds and yields generated tokens
    /// until a stop token, <paramref name="maxTokens"/>, the context end or cancellation.
    /// <paramref name="startsInReasoning"/>: the prompt already opened "&lt;think&gt;" (R1's generation prompt).
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(IModelSession session, IReadOnlyList<int> prompt, int maxTokens,
        SamplingOptions sampling, GenerationResult? result = null, bool startsInReasoning = false,
        CancellationToken cancel = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty (no tokens)");
        if (session.Position + prompt.Count >= session.ContextLength)
            throw new ArgumentException($"the prompt ({prompt.Count} tokens) does not fit in the context ({session.ContextLength} tokens, {session.Position} used)");
        var seq = new Sequence(_tok, prompt, maxTokens, sampling, result, startsInReasoning);
        seq.Result.PromptTokens = prompt.Count;
        var logits = new float[_model.Config.VocabSize];
        var ids = prompt is int[] arr ? arr : prompt.ToArray();
        for (int i = 0; i < ids.Length; i += PromptBatch)
        {
            if (cancel.IsCancellationRequested) { seq.PromptDone(); seq.Result.FinishReason = FinishReason.Cancelled; yield break; }
            int len = Math.Min(PromptBatch, ids.Length - i);
            session.Forward(ids.AsSpan(i, len), logits);
        }
        seq.PromptDone();

        var output = new List<GeneratedToken>();
        int[] one = new int[1];
        while (!seq.Finished)
        {
            if (cancel.IsCancellationRequested) seq.Finish(output, FinishReason.Cancelled);
            else
            {
                seq.Step(logits, output);
                if (!seq.Finished && session.Position >= session.ContextLength) seq.Finish(output, FinishReason.Length);
            }
            foreach (var t in output) yield return t;
            output.Clear();
            if (seq.Finished) break;
            one[0] = seq.NextToken;
            session.Forward(one, logits);
        }
    }
}