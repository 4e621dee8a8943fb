using System.Runtime.CompilerServices;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// A grammar applied to a vocabulary: which tokens may come next (<see cref="Allows"/>, one token; <see cref="Mask"/>,
/// all of them), and the parse moved past the chosen one. Stop tokens are allowed exactly when the text so far is a
/// whole sentence of the grammar; control tokens (chat markers, the reasoning markers) never are.
/// <para>
/// The whole-vocabulary mask walks the tokens in byte order (<see cref="TokenTable"/>), so a prefix shared by
/// neighbours is matched once (a token trie without the trie), and when a prefix fails, every token that starts with
/// it is skipped without a look: at a structural point (after "{" only '"', '}' and blanks fit) nearly the whole
/// vocabulary goes in one comparison per token. The sampler asks for the mask only when the token it drew does not
/// fit (<see cref="Sequence"/>): inside a JSON string almost every draw fits, and one check costs a few steps.
/// </para>
/// </summary>
internal sealed class GrammarConstraint
{
    private readonly GrammarMatcher _m;
    private readonly TokenTable _t;
    private readonly ITokenizer _tok;
    private List<GrammarMatcher.Stack?>[] _depth = [];

    public GrammarConstraint(Grammar grammar, ITokenizer tokenizer)
    {
        _m = new GrammarMatcher(grammar);
        _t = TokenTable.For(tokenizer);
        _tok = tokenizer;
    }

    /// <summary>Nothing more may be written: the answer must end.</summary>
    public bool IsFinished => _m.IsFinished;

    public bool Allows(int id)
    {
        if (_tok.StopIds.Contains(id)) return _m.IsAccepting;
        return (uint)id < (uint)_t.Bytes.Length && _t.Bytes[id] is { } b && _m.Allows(b);
    }

    /// <summary>Moves the parse past <paramref name="id"/> (a stop token changes nothing).</summary>
    public void Accept(int id)
    {
        if (_tok.StopIds.Contains(id)) return;
        if ((uint)id >= (uint)_t.Bytes.Length || _t.Bytes[id] is not { } b || !_m.Accept(b))
            throw new InvalidOperationException($"token {id} does not fit the grammar");
    }

    /// <summary>Sets the logits of every token that may not come next to -infinity.</summary>
    public void Mask(Span<float> logits)
    {
        var allowed = new bool[logits.Length];
        Walk(allowed);
        foreach (int s in _tok.StopIds) if ((uint)s < (uint)allowed.Length) allowed[s] = _m.IsAccepting;
        for (int i = 0; i < logits.Length; i++) if (!allowed[i]) logits[i] = float.NegativeInfinity;
    }

    /// <summary>Marks the tokens the grammar allows, walking them in byte order (see the class summary).</summary>
    private void Walk(bool[] allowed)
    {
        if (_depth.Length < _t.MaxLength + 1)
        {
            _depth = new List<GrammarMatcher.Stack?>[_t.MaxLength + 1];
            for (int i = 0; i < _depth.Length; i++) _depth[i] = [];
        }
        var states = new GrammarMatcher.State[_t.MaxLength + 1];   // states[d]: after the first d bytes of the last token walked
        states[0] = _m.Current;
        int valid = 0;          // states[0..valid] hold for the last walked token's prefix
        int deadAt = -1;        // that token failed at this byte count (-1: it fit)
        int common = 0;         // bytes the current token shares with the last walked one
        for (int i = 0; i < _t.Order.Length; i++)
        {
            int id = _t.Order[i];
            byte[] b = _t.Bytes[id]!;
            common = i == 0 ? 0 : Math.Min(common, _t.Lcp[i]);
            if (deadAt >= 0 && common >= deadAt) continue;   // starts with a prefix that failed
            int d = Math.Min(common, valid);
            deadAt = -1;
            for (; d < b.Length; d++)
            {
                var to = new GrammarMatcher.State { Stacks = _depth[d + 1] };
                if (!_m.Step(states[d], b[d], ref to)) { deadAt = d + 1; break; }
                states[d + 1] = to;
            }
            valid = deadAt >= 0 ? deadAt - 1 : b.Length;
            if (deadAt < 0) allowed[id] = true;
            common = b.Length;
        }
    }
}

/// <summary>
/// A vocabulary's tokens as byte strings in byte order, with the prefix each shares with the one before it; built once
/// per tokenizer. Left out: tokens without bytes, stop and BOS tokens, the reasoning markers, and control tokens written
/// like "&lt;｜…｜&gt;" or "&lt;|…|&gt;" (chat and tool markers, which are structure, not text a grammar can ask for).
/// </summary>
internal sealed class TokenTable
{
    public readonly byte[]?[] Bytes;
    public readonly int[] Order;
    public readonly int[] Lcp;
    public readonly int MaxLength;

    private static readonly ConditionalWeakTable<ITokenizer, TokenTable> s_cache = new();

    public static TokenTable For(ITokenizer tokenizer) => s_cache.GetValue(tokenizer, t => new TokenTable(t));

    private TokenTable(ITokenizer tok)
    {
        Bytes = new byte[]?[tok.VocabSize];
        var skip = new HashSet<int>(tok.StopIds);
        if (tok.BosId is int bos) skip.Add(bos);
        foreach (string marker in new[] { "<think>", "</think>" }) if (tok.TokenToId(marker) is int m) skip.Add(m);
        var ids = new List<int>();
        for (int id = 0; id < Bytes.Length; id++)
        {
            if (skip.Contains(id)) continue;
            byte[] b = tok.TokenBytes(id).ToArray();
            if (b.Length == 0 || IsControl(b)) continue;
            Bytes[id] = b;
            ids.Add(id);
            MaxLength = Math.Max(MaxLength, b.Length);
        }
        ids.Sort((x, y) => Bytes[x].AsSpan().SequenceCompareTo(Bytes[y]));
        Order = [.. ids];
        Lcp = new int[Order.Length];
        for (int i = 1; i < Order.Length; i++) Lcp[i] = Bytes[Order[i - 1]].AsSpan().CommonPrefixLength(Bytes[Order[i]]);
    }

    private static bool IsControl(byte[] b)
    {
        string s = System.Text.Encoding.UTF8.GetString(b);
        return s.Length > 4 && ((s.StartsWith("<｜", StringComparison.Ordinal) && s.EndsWith("｜>", StringComparison.Ordinal))
                             || (s.StartsWith("<|", StringComparison.Ordinal) && s.EndsWith("|>", StringComparison.Ordinal)));
    }
}
