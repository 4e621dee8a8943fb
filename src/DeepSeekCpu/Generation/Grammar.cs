using System.Globalization;
using System.Text;

namespace DeepSeekCpu.Generation;

/// <summary>
/// A context-free grammar in llama.cpp's GBNF (grammars/README.md of ggml-org/llama.cpp): rules <c>name ::= alternatives</c>,
/// the start rule <c>root</c>; terms are "literals" (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), [character classes]
/// with ranges and ^, <c>.</c> (any character), rule names and (groups), each optionally followed by <c>*</c>, <c>+</c>,
/// <c>?</c>, <c>{m}</c>, <c>{m,}</c> or <c>{m,n}</c>; <c>#</c> starts a comment. A rule ends at the end of its line unless
/// inside parentheses or right after a <c>|</c>.
/// <para>
/// Compiled form (what <see cref="GrammarMatcher"/> walks): every alternative of every rule is a run of elements in one
/// array, ended by <see cref="End"/>; an element is a character class (index into the class table) or a rule reference.
/// Repetitions and groups become rules of their own (X* is R ::= X R | empty), so the matcher knows only sequences,
/// alternatives and references.
/// </para>
/// </summary>
internal sealed class Grammar
{
    internal const int End = int.MinValue;
    /// <summary>Elements: a class index c ≥ 0, a rule reference as -(rule + 1), or <see cref="End"/>.</summary>
    internal readonly int[] Elements;
    /// <summary>For each rule, the start of each alternative in <see cref="Elements"/>.</summary>
    internal readonly int[][] Alternatives;
    /// <summary>Character classes: sorted inclusive code point ranges, and whether the class is their complement.</summary>
    internal readonly (int Lo, int Hi)[][] ClassRanges;
    internal readonly bool[] ClassNegated;
    internal readonly int Root;

    private Grammar(int[] elements, int[][] alternatives, (int, int)[][] ranges, bool[] negated, int root)
    {
        Elements = elements; Alternatives = alternatives; ClassRanges = ranges; ClassNegated = negated; Root = root;
    }

    /// <summary>True when class <paramref name="c"/> holds code point <paramref name="cp"/>.</summary>
    internal bool ClassHas(int c, int cp)
    {
        bool inside = false;
        foreach (var (lo, hi) in ClassRanges[c]) if (cp >= lo && cp <= hi) { inside = true; break; }
        return inside != ClassNegated[c];
    }

    /// <summary>True when class <paramref name="c"/> holds some code point in [lo, hi] (a UTF-8 character not yet complete).</summary>
    internal bool ClassMeets(int c, int lo, int hi)
    {
        if (!ClassNegated[c])
        {
            foreach (var (a, b) in ClassRanges[c]) if (a <= hi && b >= lo) return true;
            return false;
        }
        foreach (var (a, b) in ClassRanges[c]) if (a <= lo && b >= hi) return false;   // one excluded range covers it all
        return true;
    }

    /// <summary>Parses GBNF text; <see cref="FormatException"/> with the line and what was expected on bad input.</summary>
    public static Grammar Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new Parser(text).Run();
    }

    /// <summary>The parser: GBNF text to rules of alternatives of terms, then flattened.</summary>
    private sealed class Parser(string src)
    {
        private int _pos;
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
        private readonly List<List<List<int>>?> _rules = [];   // rule → alternatives → terms (class c ≥ 0, rule -(r+1))
        private readonly HashSet<int> _defined = [];
        private readonly List<(int, int)[]> _ranges = [];
        private readonly List<bool> _negated = [];
        private readonly Dictionary<string, int> _classIds = new(StringComparer.Ordinal);

        public Grammar Run()
        {
            Space(true);
            while (_pos < src.Length)
            {
                string name = Name();
                Space(false);
                if (!src.AsSpan(_pos).StartsWith("::=")) throw Error("'::=' after the rule name");
                _pos += 3;
                Space(true);
                int id = Id(name);
                if (!_defined.Add(id)) throw Error($"rule '{name}' defined once", name);
                _rules[id] = Alternates(nested: false);
                Space(true);
            }
            if (!_ids.TryGetValue("root", out int root)) throw new FormatException("grammar: there is no 'root' rule");
            foreach (var (name, id) in _ids)
                if (!_defined.Contains(id)) throw new FormatException($"grammar: rule '{name}' is used but never defined");
            CheckNoLeftRecursion();
            var elements = new List<int>();
            var alts = new int[_rules.Count][];
            for (int r = 0; r < _rules.Count; r++)
            {
                alts[r] = new int[_rules[r]!.Count];
                for (int a = 0; a < alts[r].Length; a++)
                {
                    alts[r][a] = elements.Count;
                    elements.AddRange(_rules[r]![a]);
                    elements.Add(End);
                }
            }
            return new Grammar([.. elements], alts, [.. _ranges], [.. _negated], root);
        }

        /// <summary>
        /// A rule that can reach itself without consuming a character (r ::= r "x", or through empty rules) would make
        /// the matcher expand forever: refused here. Nullable rules first (a fixpoint), then a depth-first search over
        /// the references each alternative can start with.
        /// </summary>
        private void CheckNoLeftRecursion()
        {
            var nullable = new bool[_rules.Count];
            for (bool changed = true; changed;)
            {
                changed = false;
                for (int r = 0; r < _rules.Count; r++)
                    if (!nullable[r] && _rules[r]!.Any(alt => alt.TrueForAll(t => t < 0 && nullable[-t - 1])))
                        nullable[r] = changed = true;
            }
            var state = new byte[_rules.Count];   // 0 unvisited, 1 on the path, 2 done
            void Visit(int r)
            {
                state[r] = 1;
                foreach (var alt in _rules[r]!)
                    foreach (int t in alt)
                    {
                        if (t >= 0) break;
                        int q = -t - 1;
                        if (state[q] == 1)
                            throw new FormatException($"grammar: rule '{_ids.First(kv => kv.Value == q).Key.TrimStart('\0')}' is left-recursive (it can start with itself)");
                        if (state[q] == 0) Visit(q);
                        if (!nullable[q]) break;
                    }
                state[r] = 2;
            }
            for (int r = 0; r < _rules.Count; r++) if (state[r] == 0) Visit(r);
        }

        private int Id(string name)
        {
            if (_ids.TryGetValue(name, out int id)) return id;
            _ids[name] = id = _rules.Count;
            _rules.Add(null);
            return id;
        }

        /// <summary>A rule of our own (groups, repetitions).</summary>
        private int Synthetic(List<List<int>> alternatives)
        {
            int id = _rules.Count;
            _rules.Add(alternatives);
            _defined.Add(id);
            _ids["\0" + id.ToString(CultureInfo.InvariantCulture)] = id;
            return id;
        }

        private List<List<int>> Alternates(bool nested)
        {
            var alts = new List<List<int>> { Sequence(nested) };
            while (_pos < src.Length && src[_pos] == '|')
            {
                _pos++;
                Space(true);
                alts.Add(Sequence(nested));
            }
            return alts;
        }

        private List<int> Sequence(bool nested)
        {
            var seq = new List<int>();
            while (_pos < src.Length)
            {
                char c = src[_pos];
                int start = seq.Count;
                if (c == '"') Literal(seq);
                else if (c == '[') seq.Add(Class());
                else if (c == '.') { _pos++; seq.Add(ClassId([], negated: true)); }
                else if (c == '(')
                {
                    _pos++;
                    Space(true);
                    var group = Alternates(nested: true);
                    if (_pos >= src.Length || src[_pos] != ')') throw Error("')'");
                    _pos++;
                    seq.Add(-(Synthetic(group) + 1));
                }
                else if (IsNameChar(c)) seq.Add(-(Id(Name()) + 1));
                else break;
                Space(nested);
                if (_pos < src.Length && src[_pos] is '*' or '+' or '?' or '{') Repeat(seq, start, nested);
            }
            return seq;
        }

        /// <summary>Applies the repetition after the last term (seq[start..]) by rewriting it as rules.</summary>
        private void Repeat(List<int> seq, int start, bool nested)
        {
            int min, max;   // max -1: unbounded
            char op = src[_pos++];
            if (op == '*') (min, max) = (0, -1);
            else if (op == '+') (min, max) = (1, -1);
            else if (op == '?') (min, max) = (0, 1);
            else
            {
                Space(false);
                min = Number();
                Space(false);
                max = min;
                if (src[_pos] == ',')
                {
                    _pos++;
                    Space(false);
                    max = char.IsAsciiDigit(src[_pos]) ? Number() : -1;
                    Space(false);
                }
                if (_pos >= src.Length || src[_pos] != '}') throw Error("'}' closing a repetition");
                _pos++;
                if (max >= 0 && max < min) throw Error("a repetition {m,n} with m <= n");
                if (Math.Max(min, max) > 10_000) throw Error("a repetition count of at most 10000");
            }
            Space(nested);
            var term = seq.GetRange(start, seq.Count - start);
            seq.RemoveRange(start, seq.Count - start);
            for (int i = 0; i < min; i++) seq.AddRange(term);
            if (max < 0)
            {
                // R ::= term R | empty
                int r = _rules.Count;
                Synthetic([[.. term, -(r + 1)], []]);
                seq.Add(-(r + 1));
            }
            else if (max > min)
            {
                // up to (max - min) more: O_k ::= term O_{k-1} | empty, O_1 ::= term | empty
                int inner = Synthetic([[.. term], []]);
                for (int k = 2; k <= max - min; k++) inner = Synthetic([[.. term, -(inner + 1)], []]);
                seq.Add(-(inner + 1));
            }
        }

        private void Literal(List<int> seq)
        {
            _pos++;
            while (_pos < src.Length && src[_pos] != '"')
            {
                int cp = Char();
                seq.Add(ClassId([(cp, cp)], negated: false));
            }
            if (_pos >= src.Length) throw Error("'\"' closing a literal");
            _pos++;
        }

        private int Class()
        {
            _pos++;
            bool neg = _pos < src.Length && src[_pos] == '^';
            if (neg) _pos++;
            var ranges = new List<(int, int)>();
            while (_pos < src.Length && src[_pos] != ']')
            {
                int lo = Char(), hi = lo;
                if (_pos + 1 < src.Length && src[_pos] == '-' && src[_pos + 1] != ']')
                {
                    _pos++;
                    hi = Char();
                    if (hi < lo) throw Error("a range low-high with low <= high");
                }
                ranges.Add((lo, hi));
            }
            if (_pos >= src.Length) throw Error("']' closing a character class");
            _pos++;
            return ClassId([.. ranges.OrderBy(r => r.Item1)], neg);
        }

        private int ClassId((int, int)[] ranges, bool negated)
        {
            string key = (negated ? "^" : "") + string.Join(",", ranges.Select(r => $"{r.Item1}-{r.Item2}"));
            if (_classIds.TryGetValue(key, out int id)) return id;
            _ranges.Add(ranges);
            _negated.Add(negated);
            return _classIds[key] = _ranges.Count - 1;
        }

        /// <summary>One character of a literal or class, escapes decoded, as a code point.</summary>
        private int Char()
        {
            if (_pos >= src.Length) throw Error("a character");
            char c = src[_pos];
            if (c != '\\')
            {
                int cp = char.IsHighSurrogate(c) && _pos + 1 < src.Length && char.IsLowSurrogate(src[_pos + 1]) ? char.ConvertToUtf32(c, src[_pos + 1]) : c;
                _pos += cp > 0xFFFF ? 2 : 1;
                return cp;
            }
            if (_pos + 1 >= src.Length) throw Error("an escape after '\\'");
            char e = src[_pos + 1];
            _pos += 2;
            return e switch
            {
                'n' => '\n', 'r' => '\r', 't' => '\t', '\\' => '\\', '"' => '"', '[' => '[', ']' => ']', '-' => '-', '^' => '^',
                'x' => Hex(2), 'u' => Hex(4), 'U' => Hex(8),
                _ => throw Error($"a known escape (\\n \\r \\t \\\\ \\\" \\[ \\] \\xHH \\uHHHH \\UHHHHHHHH), not '\\{e}'"),
            };
        }

        private int Hex(int digits)
        {
            if (_pos + digits > src.Length || !int.TryParse(src.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int v) || v > 0x10FFFF)
                throw Error($"{digits} hex digits");
            _pos += digits;
            return v;
        }

        private int Number()
        {
            int start = _pos;
            while (_pos < src.Length && char.IsAsciiDigit(src[_pos]) && _pos - start < 6) _pos++;
            if (_pos == start) throw Error("a number");
            return int.Parse(src.AsSpan(start, _pos - start), CultureInfo.InvariantCulture);
        }

        private string Name()
        {
            int start = _pos;
            while (_pos < src.Length && IsNameChar(src[_pos])) _pos++;
            if (_pos == start) throw Error("a rule name (letters, digits, '-')");
            return src[start.._pos];
        }

        private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_';

        /// <summary>Skips blanks and comments; newlines too when <paramref name="newlines"/>.</summary>
        private void Space(bool newlines)
        {
            while (_pos < src.Length)
            {
                char c = src[_pos];
                if (c is ' ' or '\t' || (newlines && c is '\n' or '\r')) _pos++;
                else if (c == '#') { while (_pos < src.Length && src[_pos] != '\n') _pos++; }
                else break;
            }
        }

        private FormatException Error(string expected, string? found = null)
        {
            int line = 1 + src.AsSpan(0, Math.Min(_pos, src.Length)).Count('\n');
            string at = _pos >= src.Length ? "the end" : src[_pos] == '\n' ? "the end of the line" : char.IsControl(src[_pos]) ? $"U+{(int)src[_pos]:X4}" : $"'{src[_pos]}'";
            return new FormatException($"grammar line {line}: expected {expected}, found {found ?? at}");
        }
    }
}
