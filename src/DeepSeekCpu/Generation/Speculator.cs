using System.Numerics.Tensors;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Draft-model speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small model sharing the target's
/// vocabulary (the 1.5B distill for the 7B/14B/32B ones) guesses the next k tokens greedily, one cheap pass each; the
/// target then runs one pass over its pending token and the k guesses together (matrix-matrix, its weights read once)
/// and <see cref="ChatEngine"/> walks the k + 1 rows of logits with the request's own sampler: a guess is kept while it
/// is the token the target itself picks; the first row that picks something else gives that token and ends the round.
/// <para>
/// Exactness: every token is still chosen by the target's sampler from the target's logits for the same history, in
/// the same order, so greedy output (and seeded sampling, which draws once per token as before) is the output of
/// plain decoding; the draft only decides how many rows one target pass verifies. For sampling this keeps a guess with
/// probability p(guess) rather than Leviathan's min(1, p/q), so acceptance is lower than it could be, never wrong.
/// One caveat shared with every engine that verifies in batches: a pass over k + 1 rows may round its last bits
/// differently from k + 1 one-row passes, which can only matter where two logits tie to within that rounding.
/// </para>
/// The draft keeps its own cache of the target's tokens; each round it is cut back to what it shares with the
/// target's and fed the difference, so rejected guesses, slot reuse and a failed pass need no other bookkeeping.
/// </summary>
internal sealed partial class Speculator : IDisposable
{
    private readonly ILanguageModel? _draft;     // null: the target's own MTP layer drafts (Speculator.Mtp.cs)
    private readonly int _vocab;                 // tokens both tokenizers define: guesses are chosen among these
    private IModelSession? _session;
    private readonly List<int> _cached = [];     // the tokens the draft session holds
    private float[] _draftLogits;
    private float[] _verifyLogits = [];          // [k + 1, target vocab]
    private readonly int[] _guesses;
    private int _targetVocab;

    /// <summary>Guesses per round (the target verifies up to K + 1 tokens per pass).</summary>
    public int K { get; }
    /// <summary>Target passes made with guesses, guesses made, and guesses the target kept (acceptance = kept / made).</summary>
    public long Rounds { get; private set; }
    public long Drafted { get; private set; }
    public long Accepted { get; private set; }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> (one line) when the draft's tokenizer differs from the target's: same
    /// size and the same bytes for every token, or token ids would mean different text.
    /// </summary>
    public Speculator(ILanguageModel draft, ITokenizer draftTokenizer, ITokenizer targetTokenizer, int k = 4)
    {
        if (k < 1 || k > 32) throw new ArgumentOutOfRangeException(nameof(k), $"draft tokens per round must be 1..32 (got {k})");
        CheckVocabulary(draftTokenizer, targetTokenizer);
        _draft = draft;
        K = k;
        _vocab = Math.Min(targetTokenizer.VocabSize, draft.Config.VocabSize);
        _draftLogits = new float[draft.Config.VocabSize];
        _guesses = new int[k];
    }

    /// <summary>The draft's tokenizer must be the target's: the same number of tokens, each the same bytes.</summary>
    public static void CheckVocabulary(ITokenizer draft, ITokenizer target)
    {
        if (draft.VocabSize != target.VocabSize)
            throw new ArgumentException($"the draft model has another vocabulary ({draft.VocabSize} tokens, the target {target.VocabSize})");
        for (int id = 0; id < target.VocabSize; id++)
            if (!draft.TokenBytes(id).SequenceEqual(target.TokenBytes(id)))
                throw new ArgumentException($"the draft model has another vocabulary (token {id} differs)");
    }

    /// <summary>The guesses of the last round, [returned k].</summary>
    public ReadOnlySpan<int> Guesses => _guesses;

    /// <summary>Row <paramref name="i"/> of the last verification pass: the target's logits after its i-th fed token.</summary>
    public Span<float> Row(int i) => _verifyLogits.AsSpan(i * _targetVocab, _targetVocab);

    /// <summary>
    /// One round: drafts up to <paramref name="maxGuesses"/> (and <see cref="K"/>) tokens after the target's
    /// <paramref name="cached"/> tokens and <paramref name="next"/>, then feeds next and the guesses to
    /// <paramref name="target"/> in one pass with every row's logits (<see cref="Row"/>). Returns the number of
    /// guesses k (0: a plain one-token step). The caller truncates the target to what it keeps.
    /// </summary>
    public int DraftAndVerify(IModelSession target, IReadOnlyList<int> cached, int next, int maxGuesses, int targetVocab)
    {
        int k = Math.Clamp(maxGuesses, 0, K);
        k = _mtp != null ? _mtp.Draft(target, cached, next, _guesses.AsSpan(0, k)) : DraftWithModel(target, cached, next, k);

        _targetVocab = targetVocab;
        if (_verifyLogits.Length < (k + 1) * targetVocab) _verifyLogits = new float[(K + 1) * targetVocab];
        Span<int> batch = stackalloc int[k + 1];   // [next, guess 1..k]; k ≤ 32
        batch[0] = next;
        _guesses.AsSpan(0, k).CopyTo(batch[1..]);
        target.Forward(batch, _verifyLogits, allPositions: true);
        if (k > 0) { Rounds++; Drafted += k; }
        return k;
    }

    /// <summary>The draft model's greedy guesses (up to k) after the target's tokens and next; returns how many.</summary>
    private int DraftWithModel(IModelSession target, IReadOnlyList<int> cached, int next, int k)
    {
        _session ??= _draft!.NewSession(target.ContextLength);
        // the draft holds what it shares with the target; feed it the rest, then the pending token
        int common = 0;
        while (common < _cached.Count && common < cached.Count && _cached[common] == cached[common]) common++;
        _session.Truncate(common);
        _cached.RemoveRange(common, _cached.Count - common);
        int feed = cached.Count - common + 1;
        // the draft feeds next and k - 1 guesses: positions up to cached.Count + k - 1 must fit its context
        k = Math.Min(k, _session.ContextLength - cached.Count);
        if (k > 0)
        {
            var tokens = new int[feed];
            for (int i = 0; i < feed - 1; i++) tokens[i] = cached[common + i];
            tokens[feed - 1] = next;
            _session.Forward(tokens, _draftLogits);
            _cached.AddRange(tokens);
            for (int i = 0; i < k; i++)
            {
                if (i > 0)
                {
                    _session.Forward([_guesses[i - 1]], _draftLogits);
                    _cached.Add(_guesses[i - 1]);
                }
                _guesses[i] = TensorPrimitives.IndexOfMax(_draftLogits.AsSpan(0, _vocab));
            }
        }
        return k;
    }

    /// <summary>Counts guesses the target kept.</summary>
    public void Kept(int n) => Accepted += n;

    /// <summary>Forgets the draft's cache (after a failed pass left it unknown).</summary>
    public void Forget()
    {
        _cached.Clear();
        _session?.Truncate(0);
        _mtp?.Forget();
    }

    public void Dispose() => _session?.Dispose();
}
