using System.Runtime.CompilerServices;
using System.Threading.Channels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>One piece of streamed output: answer or reasoning text.</summary>
public readonly record struct ChatDelta(string Text, TextKind Kind);

/// <summary>What a request asks of the generation (the model and prompt aside).</summary>
public sealed record GenerationRequest
{
    /// <summary>Most tokens to generate (reasoning included); capped by what is left of the context.</summary>
    public int MaxTokens { get; init; } = 2048;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end the answer (OpenAI "stop"); the answer is cut before the first one found.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
}

/// <summary>A finished request: the answer, the reasoning apart, why it ended and the token counts.</summary>
public sealed record ChatResult(string Content, string Reasoning, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// Serves chat and completion requests for one model to many callers: a fixed number of slots, each a session with
/// its own KV cache, taken by one request at a time (callers beyond that wait in line). A request goes to the free slot
/// whose cached tokens share the longest prefix with its prompt, so a conversation's next turn (or a shared system
/// prompt) reuses the cache instead of processing the prompt again, as llama.cpp's server slots do. Requests in
/// different slots run concurrently on their own threads and share the engine's worker pool dispatch by dispatch.
/// The server and the IChatClient adapter both sit on this class.
/// </summary>
public sealed class ChatEngine : IDisposable
{
    private sealed class Slot(IModelSession session)
    {
        public readonly IModelSession Session = session;
        public readonly List<int> Cached = [];     // tokens whose keys/values the session holds
        public bool Busy;
    }

    private readonly Slot[] _slots;
    private readonly SemaphoreSlim _free;
    private readonly Generator _generator;

    public ILanguageModel Model { get; }
    public ITokenizer Tokenizer { get; }
    /// <summary>Tokens per slot (prompt and generation together).</summary>
    public int ContextLength { get; }
    public int SlotCount => _slots.Length;

    /// <param name="contextLength">Per slot; 0: the model's maximum, at most 4096.</param>
    public ChatEngine(ILanguageModel model, ITokenizer tokenizer, int slots = 1, int contextLength = 0)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots), "at least one slot");
        Model = model; Tokenizer = tokenizer;
        ContextLength = contextLength > 0 ? contextLength : Math.Min(model.Config.MaxPositionEmbeddings, 4096);
        _slots = new Slot[slots];
        for (int i = 0; i < slots; i++) _slots[i] = new Slot(model.NewSession(ContextLength));
        _free = new SemaphoreSlim(slots, slots);
        _generator = new Generator(model, tokenizer);
    }

    /// <summary>
    /// The prompt tokens of a conversation: rendered with the model's chat template, or, for models without one,
    /// the messages' contents joined by newlines as plain text. <paramref name="opensReasoning"/>: the rendered
    /// prompt already opened the reasoning block (R1), so generation starts as reasoning.
    /// </summary>
    public int[] RenderChat(IReadOnlyList<ChatMessage> messages, out bool opensReasoning)
    {
        if (messages.Count == 0) throw new ArgumentException("there are no messages");
        var template = Tokenizer.ChatTemplate;
        opensReasoning = template?.OpensReasoning ?? false;
        return template != null
            ? Tokenizer.Encode(template.Render(messages, addGenerationPrompt: true))
            : Tokenizer.Encode(string.Join("\n", messages.Select(m => m.Content)), addSpecial: true);
    }

    /// <summary>The prompt tokens of a plain completion (BOS added where the tokenizer has one).</summary>
    public int[] RenderCompletion(string prompt) => Tokenizer.Encode(prompt, addSpecial: true);

    /// <summary>Runs a request to the end and returns the whole result.</summary>
    public async Task<ChatResult> CompleteAsync(int[] prompt, bool startsInReasoning, GenerationRequest request, CancellationToken cancel = default)
    {
        var content = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        var result = new ResultBox();
        await foreach (var d in StreamAsync(prompt, startsInReasoning, request, result, cancel))
            (d.Kind == TextKind.Answer ? content : reasoning).Append(d.Text);
        return new ChatResult(content.ToString(), reasoning.ToString(), result.FinishReason, result.PromptTokens, result.CompletionTokens);
    }

    /// <summary>Filled in by <see cref="StreamAsync"/> when the stream ends.</summary>
    public sealed class ResultBox
    {
        public string FinishReason { get; internal set; } = "length";
        public int PromptTokens { get; internal set; }
        public int CompletionTokens { get; internal set; }
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> when the request cannot run: an empty prompt, one that does not fit
    /// the context, or sampling values out of range (the message names which). Servers call it before answering.
    /// </summary>
    public void Check(int[] prompt, GenerationRequest request)
    {
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty (no tokens)");
        if (prompt.Length + 1 >= ContextLength)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens but the context holds {ContextLength} (prompt and answer together)");
        request.Sampling.Validate();
        if (request.MaxTokens < 1) throw new ArgumentException($"max tokens must be at least 1 (got {request.MaxTokens})");
    }

    /// <summary>
    /// Streams a request's output as it is generated. Waits for a free slot first. The generation runs on its own
    /// thread; abandoning the enumeration or cancelling <paramref name="cancel"/> stops it and frees the slot.
    /// Throws <see cref="ArgumentException"/> (before any output) when the prompt does not fit the context.
    /// </summary>
    public async IAsyncEnumerable<ChatDelta> StreamAsync(int[] prompt, bool startsInReasoning, GenerationRequest request,
        ResultBox? result = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        Check(prompt, request);
        result ??= new ResultBox();

        await _free.WaitAsync(cancel).ConfigureAwait(false);
        Slot slot;
        lock (_slots) slot = TakeBestSlot(prompt);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var channel = Channel.CreateUnbounded<ChatDelta>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var worker = Task.Factory.StartNew(() => Run(slot, prompt, startsInReasoning, request, result, channel.Writer, stop.Token),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            await foreach (var d in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                yield return d;
            await worker.ConfigureAwait(false);     // rethrows a failure of the generation
        }
        finally
        {
            stop.Cancel();                          // the caller stopped reading: stop generating
            try { await worker.ConfigureAwait(false); } catch { /* reported above when the stream was read to the end */ }
            lock (_slots) slot.Busy = false;
            _free.Release();
        }
    }

    private Slot TakeBestSlot(int[] prompt)
    {
        Slot? best = null;
        int bestLen = -1;
        foreach (var s in _slots)
        {
            if (s.Busy) continue;
            int n = CommonPrefix(s.Cached, prompt);
            if (n > bestLen) { best = s; bestLen = n; }
        }
        best!.Busy = true;
        return best;
    }

    private static int CommonPrefix(List<int> cached, int[] prompt)
    {
        int n = 0;
        while (n < cached.Count && n < prompt.Length - 1 && cached[n] == prompt[n]) n++; // at least one token is fed
        return n;
    }

    private void Run(Slot slot, int[] prompt, bool startsInReasoning, GenerationRequest request, ResultBox result,
        ChannelWriter<ChatDelta> output, CancellationToken cancel)
    {
        try
        {
            int common = CommonPrefix(slot.Cached, prompt);
            slot.Session.Truncate(common);
            slot.Cached.RemoveRange(common, slot.Cached.Count - common);
            var fresh = prompt[common..];
            slot.Cached.AddRange(fresh);
            int maxTokens = Math.Min(request.MaxTokens, ContextLength - prompt.Length - 1);
            var stats = new GenerationStats();
            var stops = new StopMatcher(request.Stop);
            bool stopped = false;
            foreach (var t in _generator.Generate(slot.Session, fresh, maxTokens, request.Sampling, stats, startsInReasoning, cancel))
            {
                if (t.Id >= 0 && !Tokenizer.StopIds.Contains(t.Id)) slot.Cached.Add(t.Id);
                if (t.Text.Length == 0) continue;
                if (t.Kind == TextKind.Reasoning) { output.TryWrite(new ChatDelta(t.Text, t.Kind)); continue; }
                var (emit, hit) = stops.Push(t.Text);
                if (emit.Length > 0) output.TryWrite(new ChatDelta(emit, TextKind.Answer));
                if (hit) { stopped = true; break; }
            }
            if (!stopped)
            {
                string tail = stops.Flush();
                if (tail.Length > 0) output.TryWrite(new ChatDelta(tail, TextKind.Answer));
            }
            // the session holds exactly the tokens fed so far (the last sampled token was never fed)
            int fed = slot.Session.Position;
            if (slot.Cached.Count > fed) slot.Cached.RemoveRange(fed, slot.Cached.Count - fed);
            result.PromptTokens = prompt.Length;
            result.CompletionTokens = stats.GeneratedTokens;
            result.FinishReason = stopped ? "stop" : stats.FinishReason;
            output.TryComplete();
        }
        catch (Exception e)
        {
            // a failed generation leaves the cache in an unknown state: forget it
            slot.Cached.Clear();
            slot.Session.Truncate(0);
            output.TryComplete(e);
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var s in _slots) s.Session.Dispose();
        _free.Dispose();
    }

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
}
