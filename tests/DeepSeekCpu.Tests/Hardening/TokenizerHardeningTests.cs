using System.Buffers.Binary;
using System.Text;
using DeepSeekCpu.Tests.Tokenization;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// Tokenizer files and texts built as an attacker would (issue 11): out-of-range token ids, a catastrophic Split
/// pattern, a long text for the llama2.c merge loop. Each fails with one line naming the file, or finishes in bounded
/// time.
/// </summary>
public sealed class TokenizerHardeningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dsc-hard-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void AssertOneLine(Exception e, string mustName, string mustSay) =>
        MalformedFileTests.AssertOneLine(e, mustName, mustSay);

    private string TokenizerJson(string addedTokens, string preTokenizer = """{"type": "ByteLevel", "use_regex": true}""")
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, $$"""
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "!": 2}, "merges": []},
             "added_tokens": [{{addedTokens}}],
             "pre_tokenizer": {{preTokenizer}}}
            """);
        return path;
    }

    [Fact]
    public void Added_token_with_an_ordinary_id_loads()
    {
        // positive control: an added token right after the vocabulary, and one a little further (padding between)
        var tok = HfBpeTokenizer.FromTokenizerJson(TokenizerJson("""{"id": 3, "content": "<x>"}, {"id": 40, "content": "<y>"}"""));
        Assert.Equal(41, tok.VocabSize);
        Assert.Equal([3, 0, 40], tok.Encode("<x>a<y>"));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    [InlineData(1_000_000_000)]
    public void Added_token_id_out_of_range_is_a_clean_error_without_a_large_allocation(int id)
    {
        string path = TokenizerJson($$"""{"id": {{id}}, "content": "<x>"}""");
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var e = Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path));
        AssertOneLine(e, path, $"has id {id}");
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < 64L << 20, $"allocated {allocated} bytes for a tiny file");   // 10^9 ids used to take 4 GB
    }

    [Fact]
    public void Escape_sequences_and_line_breaks_quoted_from_a_tokenizer_stay_out_of_the_message()
    {
        // An added token whose text would retitle the terminal, clear it and start a new line, with a bad id so the
        // reader quotes it: every tokenizer error is an InvalidFileException, whose message escapes control characters.
        string path = TokenizerJson("""{"id": -5, "content": "\u001b]0;owned\u0007\u001b[2J\nline"}""");
        var e = Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path));
        AssertOneLine(e, path, "has id -5");
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
        Assert.Contains("\\x1b]0;owned\\x07\\x1b[2J\\x0aline", e.Message);
    }

    [Fact]
    public void Vocabulary_id_out_of_range_is_a_clean_error()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}""");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path)), path, "has id 2000000000");
    }

    [Fact]
    public void Catastrophic_split_pattern_times_out_with_an_error_naming_the_file()
    {
        // (a+)+$ backtracks exponentially on "aaa...a!": 28 characters took 36 s without a timeout, 40 would take hours
        string path = TokenizerJson("", """
            {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": false},
              {"type": "ByteLevel", "use_regex": false}]}
            """);
        var tok = HfBpeTokenizer.FromTokenizerJson(path);
        Assert.Equal([0, 0, 0], tok.Encode("aaa"));   // ordinary text still goes through the pattern
        var work = Task.Run(() => tok.Encode(new string('a', 40) + "!"));
        Assert.True(Task.WaitAny([work], TimeSpan.FromSeconds(20)) == 0, "Encode hung on a catastrophic pattern");
        var e = Assert.ThrowsAny<Exception>(() => work.GetAwaiter().GetResult());
        AssertOneLine(e, path, "(a+)+$");
        Assert.Contains("catastrophic backtracking", e.Message);
    }

    [Fact]
    public void Hf_encoding_stops_when_cancelled()
    {
        var tok = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => tok.Encode("some text <|im_end|> more", false, cts.Token));
        ITokenizer asInterface = tok;
        Assert.ThrowsAny<OperationCanceledException>(() => asInterface.Encode("some text", false, cts.Token));
        Assert.Equal(tok.Encode("some text"), asInterface.Encode("some text", false, CancellationToken.None));
    }

    // ---- llama2.c merge loop ----

    /// <summary>
    /// run.c's encode written out plainly here (the rescan-per-merge loop), over tok512.bin read by this test: the
    /// reference the engine's priority-queue merge must equal.
    /// </summary>
    private sealed class RunCReference
    {
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
        private readonly string[] _pieces;
        private readonly float[] _scores;

        public RunCReference(string path, int vocab)
        {
            byte[] b = File.ReadAllBytes(path);
            int pos = 4;   // int max_token_length
            _pieces = new string[vocab];
            _scores = new float[vocab];
            for (int i = 0; i < vocab; i++)
            {
                _scores[i] = BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(pos));
                int len = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(pos + 4));
                _pieces[i] = Encoding.Latin1.GetString(b, pos + 8, len);   // bytes as chars, one each
                _ids.TryAdd(_pieces[i], i);
                pos += 8 + len;
            }
        }

        public List<int> Encode(string text) => Encode(text, out _);

        /// <summary>Also counts the adjacent pairs looked up in the vocabulary (the work of the merge loop).</summary>
        public List<int> Encode(string text, out long pairLookups)
        {
            pairLookups = 0;
            var t = new List<int>();
            if (text.Length > 0) t.Add(_ids[" "]);
            byte[] u = Encoding.UTF8.GetBytes(text);
            for (int i = 0; i < u.Length;)
            {
                int n = 1;
                while (i + n < u.Length && (u[i + n] & 0xC0) == 0x80 && n < 4) n++;
                if (_ids.TryGetValue(Encoding.Latin1.GetString(u, i, n), out int id)) t.Add(id);
                else for (int k = 0; k < n; k++) t.Add(u[i + k] + 3);
                i += n;
            }
            while (true)
            {
                float best = -1e10f;
                int bestId = -1, bestAt = -1;
                pairLookups += Math.Max(0, t.Count - 1);
                for (int i = 0; i + 1 < t.Count; i++)
                    if (_ids.TryGetValue(_pieces[t[i]] + _pieces[t[i + 1]], out int id) && _scores[id] > best)
                        (best, bestId, bestAt) = (_scores[id], id, i);
                if (bestAt < 0) return t;
                t[bestAt] = bestId;
                t.RemoveAt(bestAt + 1);
            }
        }
    }

    [Fact]
    public void Llama2c_merge_equals_run_c_on_random_texts()
    {
        var tok = Llama2cTokenizer.Load(TokenizerFixtures.Tok512Path(), 512);
        var reference = new RunCReference(TokenizerFixtures.Tok512Path(), 512);
        var rng = new Random(11);
        string[] words = ["Once", "upon", "a", "time", "the", "little", "girl", "Lily", "Tom", "park", "happy", "said", "ball",
            "aaaa", "ing", "ed", "  ", "\n", ".", ",", "!", "é", "😀", "你好", "the the", "tttt", "ee", "lll"];
        for (int trial = 0; trial < 300; trial++)
        {
            var sb = new StringBuilder();
            int n = rng.Next(0, 40);
            for (int i = 0; i < n; i++)
            {
                sb.Append(words[rng.Next(words.Length)]);
                if (rng.Next(3) == 0) sb.Append(' ');
                if (rng.Next(10) == 0) sb.Append((char)rng.Next(32, 127));
            }
            string text = sb.ToString();
            Assert.True(reference.Encode(text).SequenceEqual(tok.Encode(text)), $"differs on \"{text}\"");
        }
    }

    [Fact]
    public void Llama2c_merge_work_grows_linearly_with_the_text()
    {
        // 64K characters took 40 s with run.c's rescan per merge. Work is counted, not timed (the time is in
        // `bench tokenize`): the priority-queue merge looks up n - 1 pairs and at most 2 more per merge, so < 3n.
        var tok = Llama2cTokenizer.Load(TokenizerFixtures.Tok512Path(), 512);
        const string sentence = "Once upon a time there was a little girl. ";
        string text = string.Concat(Enumerable.Repeat(sentence, 1600));   // 67,200 characters
        int[] ids = tok.Encode(text, addSpecial: false, out long lookups);
        int initial = 1 + text.Length;   // the dummy prefix and one token per ASCII character
        Assert.True(lookups < 3L * initial, $"{lookups} pair lookups for {initial} tokens");
        Assert.Equal(" " + text, tok.Decode(ids));

        // the bound tells the two apart: run.c's loop already exceeds it on 1/40 of the text (and grows with its square)
        var reference = new RunCReference(TokenizerFixtures.Tok512Path(), 512);
        string shorter = string.Concat(Enumerable.Repeat(sentence, 40));
        Assert.Equal(reference.Encode(shorter, out long quadratic).ToArray(), tok.Encode(shorter, addSpecial: false, out long linear));
        Assert.True(linear < 3L * (1 + shorter.Length), $"{linear} lookups");
        Assert.True(quadratic > 3L * (1 + shorter.Length), $"run.c's loop looked up only {quadratic} pairs");
    }
}
