namespace DeepSeekCpu.Generation;

/// <summary>
/// Where a <see cref="Grammar"/> parse can be: the set of possible stacks (as llama.cpp's grammar sampler keeps them),
/// each a persistent linked list of element positions whose top is the character class to match next and whose
/// deeper entries are where to continue when a rule ends (null: the whole grammar matched), plus the bytes of a
/// UTF-8 character that is not complete yet (a token may end inside one). Fed byte by byte.
/// </summary>
internal sealed class GrammarMatcher
{
    internal sealed class Stack(int pos, Stack? parent)
    {
        public readonly int Pos = pos;
        public readonly Stack? Parent = parent;
    }

    /// <summary>One parse state: its stacks (a null entry: complete), and an unfinished UTF-8 character.</summary>
    internal struct State
    {
        public List<Stack?> Stacks;
        public int Partial, Need;   // code point bits so far, continuation bytes still expected
        public int Min;             // the least code point this many bytes may encode (shorter forms are overlong)
    }

    /// <summary>Most stacks a state may hold: an ambiguous grammar that needs more is refused, not followed forever.</summary>
    private const int MaxStacks = 4096;

    private readonly Grammar _g;
    private State _state;
    private readonly List<Stack?> _a = [], _b = [];
    private readonly HashSet<(int, Stack?)> _seen = [];

    public GrammarMatcher(Grammar grammar)
    {
        _g = grammar;
        _state = new State { Stacks = [] };
        foreach (int a in _g.Alternatives[_g.Root]) Push(new Stack(a, null), _state.Stacks, 0);
        Dedupe(_state.Stacks);
    }

    public Grammar Grammar => _g;
    internal State Current => _state;

    /// <summary>The text so far is a whole sentence of the grammar (the answer may end here).</summary>
    public bool IsAccepting => _state.Need == 0 && _state.Stacks.Contains(null);

    /// <summary>Nothing may follow: every stack is complete.</summary>
    public bool IsFinished => _state.Need == 0 && _state.Stacks.TrueForAll(s => s == null);

    /// <summary>True when <paramref name="bytes"/> can come next.</summary>
    public bool Allows(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return false;
        var from = _state;
        for (int i = 0; i < bytes.Length; i++)
        {
            var to = new State { Stacks = (i & 1) == 0 ? _a : _b };   // the two scratch lists in turn
            if (!Step(from, bytes[i], ref to)) return false;
            from = to;
        }
        return true;
    }

    /// <summary>Moves past <paramref name="bytes"/>; false (state unchanged) when the grammar does not allow them.</summary>
    public bool Accept(ReadOnlySpan<byte> bytes)
    {
        var from = _state;
        foreach (byte b in bytes)
        {
            var to = new State { Stacks = [] };
            if (!Step(from, b, ref to)) return false;
            from = to;
        }
        _state = from;
        return true;
    }

    /// <summary>
    /// <paramref name="to"/> = <paramref name="from"/> after byte <paramref name="b"/> (its list is cleared and filled);
    /// false when no stack survives.
    /// </summary>
    internal bool Step(in State from, byte b, ref State to)
    {
        to.Stacks.Clear();
        int cp, need;
        if (from.Need == 0)
        {
            // a lead byte: its length and first bits (RFC 3629)
            if (b < 0x80) { cp = b; need = 0; to.Min = 0; }
            else if ((b & 0xE0) == 0xC0) { cp = b & 0x1F; need = 1; to.Min = 0x80; }
            else if ((b & 0xF0) == 0xE0) { cp = b & 0x0F; need = 2; to.Min = 0x800; }
            else if ((b & 0xF8) == 0xF0) { cp = b & 0x07; need = 3; to.Min = 0x10000; }
            else return false;
        }
        else
        {
            if ((b & 0xC0) != 0x80) return false;
            cp = (from.Partial << 6) | (b & 0x3F);
            need = from.Need - 1;
            to.Min = from.Min;
        }
        to.Partial = cp; to.Need = need;
        if (need == 0 && (cp < to.Min || cp > 0x10FFFF)) return false;   // overlong or beyond Unicode
        if (need > 0)
        {
            // an unfinished character: keep the stacks whose class holds some character starting with these bits
            int lo = Math.Max(cp << (6 * need), to.Min), hi = Math.Min(((cp + 1) << (6 * need)) - 1, 0x10FFFF);
            if (lo > hi) return false;
            foreach (var s in from.Stacks)
                if (s != null && _g.ClassMeets(_g.Elements[s.Pos], lo, hi)) to.Stacks.Add(s);
            return to.Stacks.Count > 0;
        }
        foreach (var s in from.Stacks)
            if (s != null && _g.ClassHas(_g.Elements[s.Pos], cp))
                Push(new Stack(s.Pos + 1, s.Parent), to.Stacks, 0);
        Dedupe(to.Stacks);
        if (to.Stacks.Count > MaxStacks) throw new InvalidOperationException($"the grammar is too ambiguous (over {MaxStacks} parses at once)");
        return to.Stacks.Count > 0;
    }

    /// <summary>Adds the stacks <paramref name="s"/> stands for, each with a character class on top: a rule reference
    /// becomes one stack per alternative, the end of an alternative returns to the parent.</summary>
    private void Push(Stack? s, List<Stack?> output, int depth)
    {
        // the grammar has no left recursion (checked when parsed), so this depth is the nesting of empty rule ends
        if (depth > 10_000) throw new InvalidOperationException("the grammar nests too deeply");
        if (s == null) { output.Add(null); return; }
        int e = _g.Elements[s.Pos];
        if (e == Grammar.End) Push(s.Parent, output, depth + 1);
        else if (e < 0)
        {
            var next = new Stack(s.Pos + 1, s.Parent);
            foreach (int a in _g.Alternatives[-e - 1]) Push(new Stack(a, next), output, depth + 1);
        }
        else output.Add(s);
    }

    /// <summary>Drops stacks equal to an earlier one (same top, same continuation object).</summary>
    private void Dedupe(List<Stack?> stacks)
    {
        if (stacks.Count < 2) return;
        _seen.Clear();
        int n = 0;
        for (int i = 0; i < stacks.Count; i++)
            if (_seen.Add((stacks[i]?.Pos ?? -1, stacks[i]?.Parent))) stacks[n++] = stacks[i];
        stacks.RemoveRange(n, stacks.Count - n);
    }
}
