using System.Buffers;

namespace DeepSeekCpu.Tokenizers;

/// <summary>An added (special or user-defined) token as described by tokenizer.json's <c>added_tokens</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip = false, bool RStrip = false, bool SingleWord = false, bool Normalized = false);

/// <summary>
/// Finds added tokens in text the way Hugging Face's <c>AddedVocabulary</c> does (tokenizers/src/tokenizer/
/// added_vocabulary.rs <c>find_matches</c>): an Aho-Corasick search with leftmost-longest semantics (at the leftmost
/// position where any token starts, the longest token wins), non-overlapping; a <c>single_word</c> token only counts
/// when not glued to word characters; <c>lstrip</c>/<c>rstrip</c> widen the match over adjacent whitespace, which is
/// thereby removed from the text. A char trie gives the same result for the few hundred tokens involved.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly List<Dictionary<char, int>?> _children = [null]; // node 0 is the root
    private readonly List<int> _terminal = [-1];                        // index into _tokens, or -1
    private readonly List<AddedToken> _tokens = [];
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens, Func<string, string>? normalize = null)
    {
        var first = new HashSet<char>();
        foreach (AddedToken token in tokens)
        {
            string content = normalize is null ? token.Content : normalize(token.Content);
            if (content.Length == 0)
                continue;
            int node = 0;
            foreach (char c in content)
            {
                Dictionary<char, int> children = _children[node] ??= new Dictionary<char, int>();
                if (!children.TryGetValue(c, out int child))
                {
                    child = _children.Count;
                    _children.Add(null);
                    _terminal.Add(-1);
                    children.Add(c, child);
                }
                node = child;
            }
            if (_terminal[node] < 0) // the first token listed with a given content wins
            {
                _terminal[node] = _tokens.Count;
                _tokens.Add(token);
            }
            first.Add(content[0]);
        }
        _firstChars = SearchValues.Create(first.ToArray().AsSpan());
    }

    public bool IsEmpty => _tokens.Count == 0;

    /// <summary>
    /// Cuts <paramref name="text"/> into segments, in order: (start, length, tokenId) for an added token, tokenId -1
    /// for plain text between tokens. Empty plain segments are not reported.
    /// </summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length, int TokenId)> segments)
    {
        int emitted = 0; // end of the last reported segment
        int search = 0;
        while (search < text.Length)
        {
            int next = text[search..].IndexOfAny(_firstChars);
            if (next < 0)
                break;
            int start = search + next;
            (int length, AddedToken? token) = LongestAt(text, start);
            if (token is null)
            {
                search = start + 1;
                continue;
            }
            int stop = start + length;
            search = stop;
            if (token.SingleWord && ((start > 0 && IsWordChar(text, start - 1, backwards: true)) || (stop < text.Length && IsWordChar(text, stop, backwards: false))))
                continue; // a single_word token inside a word is plain text (HF skips this match)

            if (token.LStrip)
            {
                while (start > emitted && char.IsWhiteSpace(text[start - 1]))
                    start--;
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                    stop++;
                search = stop;
            }
            if (start > emitted)
                segments.Add((emitted, start - emitted, -1));
            segments.Add((start, stop - start, token.Id));
            emitted = stop;
        }
        if (emitted < text.Length)
            segments.Add((emitted, text.Length - emitted, -1));
    }

    private (int Length, AddedToken? Token) LongestAt(ReadOnlySpan<char> text, int start)
    {
        int node = 0, bestLength = 0, best = -1;
        for (int i = start; i < text.Length; i++)
        {
            Dictionary<char, int>? children = _children[node];
            if (children is null || !children.TryGetValue(text[i], out node))
                break;
            if (_terminal[node] >= 0)
            {
                best = _terminal[node];
                bestLength = i - start + 1;
            }
        }
        return best < 0 ? (0, null) : (bestLength, _tokens[best]);
    }

    // HF: a word character is alphanumeric or '_' (Rust char::is_alphanumeric), judged on whole code points.
    private static bool IsWordChar(ReadOnlySpan<char> text, int index, bool backwards)
    {
        int codePoint;
        if (backwards && char.IsLowSurrogate(text[index]) && index > 0 && char.IsHighSurrogate(text[index - 1]))
            codePoint = char.ConvertToUtf32(text[index - 1], text[index]);
        else if (!backwards && char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
            codePoint = char.ConvertToUtf32(text[index], text[index + 1]);
        else
            codePoint = text[index];
        if (codePoint == '_')
            return true;
        var rune = new System.Text.Rune(codePoint < 0xD800 || codePoint > 0xDFFF ? codePoint : 0xFFFD);
        return System.Text.Rune.IsLetterOrDigit(rune) || System.Globalization.CharUnicodeInfo.GetUnicodeCategory(codePoint) is System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber;
    }
}
