using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// A stand-in model whose output is known in advance: after any prompt it makes the tokens of <c>script</c> the only
/// likely ones, one after another, so tests of the serving layers (HTTP, IChatClient, slots) can assert exact text,
/// reasoning/answer split, finish reasons and token counts. It counts the tokens it is fed (prefix reuse shows there).
/// With <see cref="Gated"/> every forward pass waits for the test's permission (<see cref="Steps"/>), so a test
/// decides when each token is produced instead of hoping a delay orders the events.
/// </summary>
internal sealed class ScriptedModel(int vocab, int[] script) : ILanguageModel
{
    public int TokensFed;
    public readonly int[] Script = script;
    private readonly SemaphoreSlim _arrived = new(0), _permits = new(0);
    private volatile bool _gated;
    /// <summary>While true, each forward pass (a prompt chunk or a decoding step) waits until <see cref="Steps"/> lets
    /// it run.</summary>
    public bool Gated
    {
        get => _gated;
        set { _gated = value; if (!value) _permits.Release(); }   // wakes a pass waiting at the gate
    }

    /// <summary>Lets the next <paramref name="n"/> forward passes run, each once it has reached the gate.</summary>
    public async Task Steps(int n)
    {
        for (int i = 0; i < n; i++)
        {
            if (!await _arrived.WaitAsync(TimeSpan.FromSeconds(30))) throw new TimeoutException("no forward pass reached the gate");
            _permits.Release();
        }
    }
    /// <summary>Lets one forward pass run if one reaches the gate within <paramref name="wait"/>; false if none did.</summary>
    public async Task<bool> TryStep(TimeSpan wait)
    {
        if (!await _arrived.WaitAsync(wait)) return false;
        _permits.Release();
        return true;
    }
    /// <summary>A token that makes the forward pass throw (a failing request).</summary>
    public int? Poison;
    public ModelConfig Config { get; } = new()
    {
        Architecture = Architecture.Qwen2, VocabSize = vocab, HiddenSize = 1, IntermediateSize = 1, NumLayers = 1, NumHeads = 1,
        MaxPositionEmbeddings = 4096,
    };
    public ModelWeights Weights { get; } = new("scripted", new(), new());
    public long KvBytesPerToken => 0;
    public long WeightBytesPerToken => 0;
    public IModelSession NewSession(int contextLength) => new Session(this, contextLength);
    public void Dispose() { }

    /// <summary>The R1 distill tokenizer (real files) and a script "reasoning &lt;/think&gt; answer EOS" in its tokens.</summary>
    public static (ScriptedModel Model, ITokenizer Tokenizer, string Reasoning, string Answer) R1(string reasoning, string answer)
    {
        var tok = TokenizerLoader.FromDirectory(TestPaths.Fixture("tokenizers", "r1-distill-qwen"));
        int[] script = [.. tok.Encode(reasoning + "</think>" + answer), tok.EosId!.Value];
        return (new ScriptedModel(tok.VocabSize, script), tok, reasoning, answer);
    }

    private sealed class Session(ScriptedModel m, int ctx) : IModelSession
    {
        private int _next;   // index in the script of the token to predict next
        public int Position { get; private set; }
        public int ContextLength => ctx;

        public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
        {
            if (m.Poison is int p && tokens.Contains(p)) throw new InvalidOperationException("poisoned prompt");
            if (m._gated) { m._arrived.Release(); m._permits.Wait(); }
            Interlocked.Add(ref m.TokensFed, tokens.Length);
            Position += tokens.Length;
            // following the script when fed its own last prediction, else (a new prompt) starting it over
            var script = m.Script;
            _next = _next < script.Length && tokens[^1] == script[_next] && tokens.Length == 1 ? _next + 1 : 0;
            var row = logits[..m.Config.VocabSize];
            row.Clear();
            row[_next < script.Length ? script[_next] : script[^1]] = 50f;
        }

        public void Truncate(int position) => Position = position;
        public void Dispose() { }
    }
}
