namespace DeepSeekCpu.Generation;

/// <summary>
/// Finds stop strings in streamed answer text: text that might be the start of a stop string is held back until
/// the next piece decides it, so a stop string split across tokens is never emitted.
/// </summary>
internal sealed class StopMatcher(IReadOnlyList<string> stops)
{
    private string _pending = "";

    /// <summary>Adds text; returns what can be emitted and whether a stop string was reached (text before it is emitted).</summary>
    public (string Emit, bool Hit) Push(string text)
    {
        if (stops.Count == 0) return (text, false);
        _pending += text;
        int first = -1;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            int i = _pending.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        if (first >= 0)
        {
            string before = _pending[..first];
            _pending = "";
            return (before, true);
        }
        int hold = 0;   // longest suffix of pending that is a proper prefix of a stop string
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                if (_pending.AsSpan(_pending.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        string emit = _pending[..^hold];
        _pending = _pending[^hold..];
        return (emit, false);
    }

    public string Flush()
    {
        string rest = _pending;
        _pending = "";
        return rest;
    }
}
