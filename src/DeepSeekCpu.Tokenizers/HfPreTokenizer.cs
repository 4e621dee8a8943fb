using Microsoft.ML.Tokenizers;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// Hugging Face tokenizers' pre-tokenization, as a Microsoft.ML.Tokenizers <see cref="PreTokenizer"/> (which cannot
/// express it: its <c>RegexPreTokenizer</c> drops text between matches and <c>CompositePreTokenizer</c> reports wrong
/// offsets there). A pre-tokenizer is a list of steps applied in order, each step re-splitting every piece the previous
/// step produced (HF <c>Sequence</c>). Each piece is matched on its own, so a lookahead such as <c>\s+(?!\S)</c> sees the
/// end of the piece as the end of the text, as in HF. Supported steps: <c>Split</c>, <c>ByteLevel</c>, <c>Digits</c>.
/// The byte-to-alphabet mapping of ByteLevel is done by the BPE model (BpeOptions.ByteLevel), not here.
/// </summary>
internal sealed class HfPreTokenizer : PreTokenizer
{
    /// <summary>GPT-2's pattern, used by HF's ByteLevel pre-tokenizer when <c>use_regex</c> is true (byte_level.rs).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly IReadOnlyList<Step> _steps;

    internal HfPreTokenizer(IReadOnlyList<Step> steps) => _steps = steps;

    /// <summary>Human-readable list of steps (for diagnostics).</summary>
    public override string ToString() => string.Join(" → ", _steps);

    /// <summary>Splits <paramref name="text"/>; appends (offset, length) pieces, in order, covering every non-removed char.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Offset, int Length)> pieces)
    {
        var current = new List<(int Offset, int Length)>(8) { (0, text.Length) };
        var next = new List<(int Offset, int Length)>(Math.Max(8, text.Length / 3));
        var scratch = new List<(int Start, int Length)>();
        if (text.Length == 0)
            current.Clear();
        foreach (Step step in _steps)
        {
            next.Clear();
            foreach ((int offset, int length) in current)
                step.Split(text.Slice(offset, length), offset, next, scratch);
            (current, next) = (next, current);
        }
        pieces.AddRange(current);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => PreTokenize(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int Offset, int Length)>();
        Split(text, pieces);
        return pieces;
    }

    /// <summary>HF <c>SplitDelimiterBehavior</c>: what happens to the matched delimiter.</summary>
    public enum SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous }

    internal abstract class Step
    {
        /// <summary>Splits <paramref name="piece"/> (at <paramref name="offset"/> in the text) into <paramref name="output"/>.</summary>
        public abstract void Split(ReadOnlySpan<char> piece, int offset, List<(int Offset, int Length)> output, List<(int Start, int Length)> scratch);
    }

    /// <summary>
    /// HF <c>Split</c> (tokenizers/src/pre_tokenizers/split.rs with normalizer.rs <c>split</c>): the text is cut into
    /// alternating matched / unmatched segments (swapped with <c>invert</c>), and the behavior decides what happens
    /// to the matched ones. Isolated is what byte-level tokenizers use: every segment becomes a piece.
    /// </summary>
    internal sealed class SplitStep(CodePointRegex regex, SplitBehavior behavior, bool invert) : Step
    {
        public override string ToString() => $"Split({regex.Pattern}, {behavior}{(invert ? ", inverted" : "")})";

        public override void Split(ReadOnlySpan<char> piece, int offset, List<(int Offset, int Length)> output, List<(int Start, int Length)> scratch)
        {
            scratch.Clear();
            regex.Matches(piece, scratch);

            if (behavior == SplitBehavior.Isolated)
            {
                // Fast path: every gap and every match is a piece.
                int at = 0;
                foreach ((int start, int length) in scratch)
                {
                    if (start > at)
                        output.Add((offset + at, start - at));
                    output.Add((offset + start, length));
                    at = start + length;
                }
                if (at < piece.Length)
                    output.Add((offset + at, piece.Length - at));
                return;
            }

            // General case: list (start, end, isMatch) segments, then fold them by behavior.
            var segments = new List<(int Start, int End, bool IsMatch)>(scratch.Count * 2 + 1);
            int pos = 0;
            foreach ((int start, int length) in scratch)
            {
                if (start > pos)
                    segments.Add((pos, start, invert));
                segments.Add((start, start + length, !invert));
                pos = start + length;
            }
            if (pos < piece.Length)
                segments.Add((pos, piece.Length, invert));

            var result = new List<(int Start, int End)>(segments.Count);
            switch (behavior)
            {
                case SplitBehavior.Removed:
                    foreach (var s in segments)
                        if (!s.IsMatch) result.Add((s.Start, s.End));
                    break;
                case SplitBehavior.Contiguous:          // consecutive matches become one piece
                    Fold(segments, result, joinAfterMatch: true, backwards: false);
                    break;
                case SplitBehavior.MergedWithPrevious:  // a match joins the piece before it
                    Fold(segments, result, joinAfterMatch: false, backwards: false);
                    break;
                case SplitBehavior.MergedWithNext:      // mirror image: walking backwards, a match joins the piece after it
                    Fold(segments, result, joinAfterMatch: false, backwards: true);
                    break;
                default:
                    foreach (var s in segments)
                        result.Add((s.Start, s.End));
                    break;
            }
            foreach ((int start, int end) in result)
                output.Add((offset + start, end - start));
        }

        /// <summary>
        /// Folds segments into pieces in walking order (forwards, or backwards for MergedWithNext): a match joins the
        /// piece walked just before it when the segment before it was a match (<paramref name="joinAfterMatch"/>,
        /// Contiguous) or was not (MergedWith*); every other segment starts a piece.
        /// </summary>
        private static void Fold(List<(int Start, int End, bool IsMatch)> segments, List<(int Start, int End)> result, bool joinAfterMatch, bool backwards)
        {
            bool previousMatch = false;
            for (int k = 0; k < segments.Count; k++)
            {
                var s = segments[backwards ? segments.Count - 1 - k : k];
                if (s.IsMatch && previousMatch == joinAfterMatch && result.Count > 0)
                    result[^1] = (Math.Min(result[^1].Start, s.Start), Math.Max(result[^1].End, s.End));   // segments are adjacent
                else
                    result.Add((s.Start, s.End));
                previousMatch = s.IsMatch;
            }
            if (backwards) result.Reverse();
        }
    }

    /// <summary>
    /// HF <c>ByteLevel</c> as a pre-tokenizer step: with <c>use_regex</c> it splits with GPT-2's pattern (Isolated);
    /// without, the piece passes through. Its byte mapping happens in the BPE model.
    /// </summary>
    internal sealed class ByteLevelStep(bool useRegex) : Step
    {
        private static readonly Lazy<SplitStep> s_gpt2 = new(() => new SplitStep(new CodePointRegex(Gpt2Pattern), SplitBehavior.Isolated, false));

        public override string ToString() => $"ByteLevel(use_regex: {useRegex})";

        public override void Split(ReadOnlySpan<char> piece, int offset, List<(int Offset, int Length)> output, List<(int Start, int Length)> scratch)
        {
            if (useRegex)
                s_gpt2.Value.Split(piece, offset, output, scratch);
            else if (!piece.IsEmpty)
                output.Add((offset, piece.Length));
        }
    }

    /// <summary>HF <c>Digits</c>: numeric characters (Rust <c>char::is_numeric</c>, i.e. \p{N}) isolated, one by one with
    /// <c>individual_digits</c>, else as runs.</summary>
    internal static SplitStep Digits(bool individualDigits) =>
        new(new CodePointRegex(individualDigits ? @"\p{N}" : @"\p{N}+"), SplitBehavior.Isolated, false);

    internal static SplitStep Regex(string pattern, SplitBehavior behavior = SplitBehavior.Isolated, bool invert = false) =>
        new(new CodePointRegex(pattern), behavior, invert);
}
