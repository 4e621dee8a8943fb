using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// A stand-in model that answers its k-th prompt with <c>scripts[k]</c> (the last one again after that), making each
/// script token the only likely one in turn; it records every prompt it was given (the whole context, cached prefix
/// included), so a test of a multi-turn exchange (a tool call, then the answer) sees what the model was shown.
/// </summary>
internal sealed class PromptScriptedModel(int vocab, params int[][] scripts) : ILanguageModel
{
    public readonly List<int[]> Prompts = [];
    private int _prompts;
    private readonly int[][] _scripts = scripts;

    public ModelConfig Config { get; } = new()
    {
        Architecture = Architecture.Qwen2, VocabSize = vocab, HiddenSize = 1, IntermediateSize = 1, NumLayers = 1, NumHeads = 1,
        MaxPositionEmbeddings = 4096,
    };
    public ModelWeights Weights { get; } = new("prompt-scripted", new(), new());
    public long KvBytesPerToken => 0;
    public long WeightBytesPerToken => 0;
    public IModelSession NewSession(int contextLength) => new Session(this, contextLength);
    public void Dispose() { }

    private sealed class Session(PromptScriptedModel m, int ctx) : IModelSession
    {
        private readonly List<int> _context = [];
        private int[] _script = [];
        private int _next;
        public int Position => _context.Count;
        public int ContextLength => ctx;

        public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
        {
            bool follows = tokens.Length == 1 && _next < _script.Length && tokens[0] == _script[_next];
            _context.AddRange(tokens);
            if (follows) _next++;
            else
            {
                lock (m.Prompts)
                {
                    m.Prompts.Add([.. _context]);
                    _script = m._scripts[Math.Min(m._prompts++, m._scripts.Length - 1)];
                }
                _next = 0;
            }
            var row = logits[..m.Config.VocabSize];
            row.Clear();
            row[_next < _script.Length ? _script[_next] : _script[^1]] = 50f;
        }

        public void Truncate(int position) => _context.RemoveRange(position, _context.Count - position);
        public void Dispose() { }
    }
}
