using System.Runtime.CompilerServices;
using System.Threading.Channels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Serves chat and completion requests for one model to many callers with continuous batching: a fixed number of
/// slots, each a session with its own KV cache, and one scheduler thread that runs the model. Every step it decodes
/// one token for every request that is generating, in a single <see cref="ILanguageModel.DecodeBatch"/> (the weights
/// are read once for all of them: decoding is memory-bound, so N requests cost little more than one), and feeds a chunk
/// of a newly admitted prompt. A request takes the free slot whose cached tokens share the longest prefix with its
/// prompt, so a conversation's next turn (or a shared system prompt) is not processed again, as llama.cpp's server
/// slots do; requests beyond the slots wait in line. Every front end sits on this class: the server, the IChatClient
/// adapter, and the CLI's run and chat (one slot each).
/// </summary>
public sealed partial class ChatEngine : IDisposable
{
    /// <summary>One request from admission to its last delta.</summary>
    internal sealed class Job
    {
        public required int[] Prompt;
        public required bool StartsInReasoning;
        public required GenerationRequest Request;
        public required GenerationResult Result;
        public required ChannelWriter<ChatDelta> Output;
        public required CancellationToken Cancel;
        public Slot? Slot;
        public int Fed;                            // prompt tokens in the slot's cache so far
        public Sequence? Seq;                      // set with the first prompt chunk
        public StopMatcher Stops = null!;
        public readonly long Submitted = System.Diagnostics.Stopwatch.GetTimestamp();   // for the observer's timings
        public long LastToken;                     // timestamp of the last sampled token (0: none yet)
        /// <summary>Set when the scheduler has let the job go (finished, cancelled or failed; its slot is free).</summary>
        public readonly TaskCompletionSource Released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Ends the output (with <paramref name="error"/>, if any) and signals <see cref="Released"/>.</summary>
        public void End(Exception? error = null)
        {
            Output.TryComplete(error);
            Released.TrySetResult();
        }
    }

    private readonly Slot[] _slots;
    private long _admissions;
    private readonly Queue<Job> _waiting = new();
    private readonly object _lock = new();
    private readonly Thread _scheduler;
    private bool _disposed;
    private readonly List<GeneratedToken> _pieces = [];

    /// <summary>The model the engine runs (not owned: dispose it after the engine).</summary>
    public ILanguageModel Model { get; }
    /// <summary>The tokenizer prompts are encoded and answers decoded with.</summary>
    public ITokenizer Tokenizer { get; }
    /// <summary>Tokens per slot (prompt and generation together).</summary>
    public int ContextLength { get; }
    /// <summary>Requests that run at the same time (each slot a session with its own KV cache); more wait for a slot.</summary>
    public int SlotCount => _slots.Length;
    /// <summary>
    /// Prompt tokens per forward pass: the one prompt-chunk rule. A pass over many tokens is matrix-matrix work, faster
    /// per token as the chunk grows to a few hundred, while the pass's activations grow with it (the models' scratch
    /// is sized by the largest chunk); 512 is llama.cpp's default batch and keeps that scratch small. While other
    /// requests are decoding, a quarter of it (<see cref="PromptChunkWhileDecoding"/>), because their next tokens wait
    /// for the pass to end.
    /// </summary>
    public int PromptChunk { get; init; } = 512;
    internal int PromptChunkWhileDecoding => Math.Max(1, PromptChunk / 4);
    /// <summary>
    /// Speculative decoding with a draft model (<see cref="Speculator"/>): used while one request is decoding (the
    /// one-slot engine of run --draft); several decoding requests are batched as usual. Null: plain decoding.
    /// </summary>
    internal Speculator? Draft { get; init; }
    /// <summary>The reasoning budget of requests that name none (serve/run/chat --reasoning-budget); null: no limit.</summary>
    public int? ReasoningBudget { get; init; }

    /// <param name="contextLength">Per slot; 0: the model's maximum, at most 4096.</param>
    public ChatEngine(ILanguageModel model, ITokenizer tokenizer, int slots = 1, int contextLength = 0)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots), "at least one slot");
        Model = model; Tokenizer = tokenizer;
        int wanted = contextLength > 0 ? contextLength : Math.Min(model.Config.MaxPositionEmbeddings, 4096);
        _slots = new Slot[slots];
        for (int i = 0; i < slots; i++) _slots[i] = new Slot(model.NewSession(wanted));
        // what the sessions really hold (models cap it at their maximum position)
        ContextLength = _slots.Min(s => s.Session.ContextLength);
        _scheduler = new Thread(Schedule) { IsBackground = true, Name = "deepseek-cpu scheduler" };
        _scheduler.Start();
    }

    /// <summary>
    /// The prompt tokens of a conversation: rendered with the model's chat template, or, for models without one,
    /// the messages' contents joined by newlines as plain text. <paramref name="opensReasoning"/>: the rendered
    /// prompt already opened the reasoning block (R1), so generation starts as reasoning.
    /// </summary>
    /// <paramref name="cancel"/> stops the tokenization (a client that left).
    public int[] RenderChat(IReadOnlyList<ChatMessage> messages, out bool opensReasoning, CancellationToken cancel = default) =>
        RenderChat(messages, null, out opensReasoning, cancel);

    /// <summary>
    /// As above, with a hybrid template's thinking switch (V3.1: true thinks, false answers directly, null is the
    /// template's default). Whether generation starts as reasoning is read from the rendered prompt: it ends by opening
    /// "&lt;think&gt;" (R1's "&lt;think&gt;\n", V3.1's "&lt;think&gt;") or it does not (the model may still open one).
    /// </summary>
    public int[] RenderChat(IReadOnlyList<ChatMessage> messages, bool? thinking, out bool opensReasoning, CancellationToken cancel = default)
    {
        if (messages.Count == 0) throw new ArgumentException("there are no messages");
        var template = Tokenizer.ChatTemplate;
        opensReasoning = false;
        if (template == null) return Tokenizer.Encode(string.Join("\n", messages.Select(m => m.Content)), addSpecial: true, cancel);
        string text = template.Render(messages, addGenerationPrompt: true, thinking);
        opensReasoning = text.EndsWith("<think>\n", StringComparison.Ordinal) || text.EndsWith("<think>", StringComparison.Ordinal);
        return Tokenizer.Encode(text, addSpecial: false, cancel);
    }

    /// <summary>The prompt tokens of a plain completion (BOS added where the tokenizer has one).</summary>
    public int[] RenderCompletion(string prompt, CancellationToken cancel = default) => Tokenizer.Encode(prompt, addSpecial: true, cancel);

    /// <summary>Runs a request to the end and returns the whole result.</summary>
    public async Task<GenerationResult> CompleteAsync(int[] prompt, bool startsInReasoning, GenerationRequest request, CancellationToken cancel = default)
    {
        var result = new GenerationResult();
        await foreach (var _ in StreamAsync(prompt, startsInReasoning, request, result, cancel)) { }
        return result;
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> when the request cannot run: an empty prompt, one that does not fit
    /// the context, or sampling values out of range (the message names which). Servers call it before answering.
    /// The fit rule: the prompt must leave at least one position of the context free. Generation then runs until
    /// the cache is full (the token sampled from its last position is the final one, "length"), so an answer has at
    /// most ContextLength - prompt + 1 tokens.
    /// </summary>
    public void Check(int[] prompt, GenerationRequest request)
    {
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty (no tokens)");
        if (prompt.Length >= ContextLength)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens but the context holds {ContextLength} (prompt and answer together)");
        request.Sampling.Validate();
        if (request.MaxTokens < 1) throw new ArgumentException($"max tokens must be at least 1 (got {request.MaxTokens})");
    }

    /// <summary>
    /// Streams a request's output as it is generated (after waiting for a free slot). Abandoning the enumeration or
    /// cancelling <paramref name="cancel"/> ends the request and frees its slot.
    /// Throws <see cref="ArgumentException"/> (before any output) when <see cref="Check"/> fails.
    /// </summary>
    public async IAsyncEnumerable<ChatDelta> StreamAsync(int[] prompt, bool startsInReasoning, GenerationRequest request,
        GenerationResult? result = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        Check(prompt, request);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var channel = Channel.CreateUnbounded<ChatDelta>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var job = new Job
        {
            Prompt = prompt, StartsInReasoning = startsInReasoning, Request = request, Result = result ?? new GenerationResult(),
            Output = channel.Writer, Cancel = stop.Token, Stops = new StopMatcher(request.Stop),
        };
        job.Result.PromptTokens = prompt.Length;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _waiting.Enqueue(job);
            Monitor.PulseAll(_lock);
        }
        try
        {
            await foreach (var d in channel.Reader.ReadAllAsync(cancel).ConfigureAwait(false))
            {
                if (cancel.IsCancellationRequested) break;   // ReadAllAsync hands out buffered deltas without checking
                job.Result.Append(d);
                yield return d;
            }
        }
        finally
        {
            stop.Cancel();   // the caller stopped reading (or everything was read): the scheduler lets the job go
            lock (_lock) Monitor.PulseAll(_lock);
            // ...within a step; wait for it, so the result (finish reason, statistics) is final when this returns. Not
            // channel.Reader.Completion: that completes only once every buffered delta has been read, and a caller
            // that broke out of the loop reads no more, so it would wait forever.
            await job.Released.Task.ConfigureAwait(false);
        }
        cancel.ThrowIfCancellationRequested();
    }

    /// <summary>The scheduler thread: admit waiting jobs to free slots, feed prompt chunks, decode everyone together.</summary>
    private void Schedule()
    {
        int vocab = Model.Config.VocabSize;
        var logits = new float[vocab];
        var batchLogits = Array.Empty<float>();
        var sessions = new List<IModelSession>();
        var decoding = new List<Job>();
        var tokens = new List<int>();
        while (true)
        {
            Job? prefill = null;
            decoding.Clear();
            lock (_lock)
            {
                while (true)
                {
                    if (_disposed) { FailAll(new ObjectDisposedException(nameof(ChatEngine))); return; }
                    try { Admit(); }
                    catch (Exception e) { FailAll(e); }   // never let the scheduler thread die
                    foreach (var s in _slots)
                        if (s.Job is { } j)
                        {
                            if (j.Cancel.IsCancellationRequested) { Complete(j, FinishReason.Cancelled); continue; }
                            if (j.Fed < j.Prompt.Length) prefill ??= j;
                            else decoding.Add(j);
                        }
                    if (prefill != null || decoding.Count > 0) break;
                    Monitor.Wait(_lock);
                }
            }
            if (prefill != null)
            {
                try { Prefill(prefill, decoding.Count > 0 ? PromptChunkWhileDecoding : PromptChunk, logits); }
                catch (Exception e) { lock (_lock) Reset(prefill, e); }   // fails that request only
            }
            if (decoding.Count == 0) continue;
            try
            {
                if (Draft != null && decoding.Count == 1) { Speculate(decoding[0]); continue; }
                sessions.Clear(); tokens.Clear();
                foreach (var j in decoding) { sessions.Add(j.Slot!.Session); tokens.Add(j.Seq!.NextToken); }
                if (batchLogits.Length < decoding.Count * vocab) batchLogits = new float[decoding.Count * vocab * 2];
                Model.DecodeBatch(sessions, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens), batchLogits);
                for (int i = 0; i < decoding.Count; i++)
                {
                    var j = decoding[i];
                    j.Slot!.Cached.Add(tokens[i]);
                    Advance(j, batchLogits.AsSpan(i * vocab, vocab));
                }
            }
            catch (Exception e)
            {
                // a failed batched pass leaves those caches in an unknown state: fail those requests, forget the caches
                Draft?.Forget();
                lock (_lock)
                    foreach (var j in decoding)
                        if (j.Slot?.Job == j) Reset(j, e);
            }
        }
    }

    /// <summary>
    /// Waiting jobs take free slots in arrival order, each the slot <see cref="Slot.Choose"/> picks (under _lock).
    /// Requests cancelled while waiting leave the line at once.
    /// </summary>
    private void Admit()
    {
        bool anyCancelled = false;
        foreach (var j in _waiting) anyCancelled |= j.Cancel.IsCancellationRequested;
        if (anyCancelled)
        {
            var keep = _waiting.Where(j => !j.Cancel.IsCancellationRequested).ToList();
            foreach (var j in _waiting.Where(j => j.Cancel.IsCancellationRequested)) j.End();
            _waiting.Clear();
            foreach (var j in keep) _waiting.Enqueue(j);
        }
        while (_waiting.Count > 0)
        {
            var job = _waiting.Peek();
            if (Slot.Choose(_slots, job.Prompt, out int reuse) is not { } slot) return;   // no free slot
            _waiting.Dequeue();
            slot.Take(job, reuse, ++_admissions);
            job.Slot = slot;
            job.Fed = job.Result.CachedPromptTokens = reuse;
        }
    }

    /// <summary>Feeds the next chunk of a job's prompt; after the last one, samples its first token.</summary>
    private void Prefill(Job j, int chunk, float[] logits)
    {
        var slot = j.Slot!;
        if (j.Seq == null)
        {
            // created before the first chunk, so that its clock times the prompt; the context end is Advance's check
            j.Seq = new Sequence(Tokenizer, j.Prompt, j.Request.MaxTokens, j.Request.Sampling, j.Result, j.StartsInReasoning)
            {
                Grammar = j.Request.Grammar, ReasoningBudget = j.Request.ReasoningBudget ?? ReasoningBudget, TopLogprobs = j.Request.TopLogprobs,
            };
        }
        int len = Math.Min(chunk, j.Prompt.Length - j.Fed);
        slot.Session.Forward(j.Prompt.AsSpan(j.Fed, len), logits);
        slot.Cached.AddRange(j.Prompt.AsSpan(j.Fed, len));
        j.Fed += len;
        if (j.Fed < j.Prompt.Length) return;
        j.Seq.PromptDone();
        Advance(j, logits);
    }

    /// <summary>
    /// One speculative step (<see cref="Speculator"/>): the draft's guesses and the pending token in one target pass,
    /// then each row sampled as a plain step would be, while the target's pick is the guess; the cache keeps the
    /// pending token and the kept guesses.
    /// </summary>
    private void Speculate(Job j)
    {
        var slot = j.Slot!;
        var seq = j.Seq!;
        int p = slot.Session.Position, next = seq.NextToken;
        // guesses past the context or the token budget would be verified for nothing
        int room = Math.Min(ContextLength - p - 1, j.Request.MaxTokens - j.Result.CompletionTokens - 1);
        int k = Draft!.DraftAndVerify(slot.Session, slot.Cached, next, room, Model.Config.VocabSize);
        slot.Cached.Add(next);
        int kept = 0;
        while (true)
        {
            Advance(j, Draft.Row(kept), p + 1 + kept);
            if (kept == k || seq.Finished || seq.NextToken != Draft.Guesses[kept]) break;
            slot.Cached.Add(Draft.Guesses[kept]);
            kept++;
            Draft.Kept(1);   // counted before the Advance that may end the job, so the caller reads final counts
        }
        slot.Session.Truncate(p + 1 + kept);
    }

    /// <summary>Samples a job's next token from its logits, streams the text, and ends the job when it is done.
    /// <paramref name="fed"/>: tokens in the cache for this row (default: the session's position).</summary>
    private void Advance(Job j, Span<float> logits, int fed = -1)
    {
        var seq = j.Seq!;
        _pieces.Clear();
        if (j.Cancel.IsCancellationRequested) seq.Finish(_pieces, FinishReason.Cancelled);
        else
        {
            Observe(j);
            seq.Step(logits, _pieces);
            if (!seq.Finished && (fed >= 0 ? fed : j.Slot!.Session.Position) >= ContextLength) seq.Finish(_pieces, FinishReason.Length);
        }
        bool hit = false;
        if (seq.LastLogprob is { } lp && _pieces.Count > 0 && _pieces[^1].Id == lp.Id)
            j.Output.TryWrite(new ChatDelta("", _pieces[^1].Kind) { Logprob = lp });
        foreach (var t in _pieces)
        {
            if (t.Text.Length == 0) continue;
            if (t.Kind == TextKind.Reasoning) { j.Output.TryWrite(new ChatDelta(t.Text, t.Kind)); continue; }
            var (emit, stopHere) = j.Stops.Push(t.Text);
            if (emit.Length > 0) j.Output.TryWrite(new ChatDelta(emit, TextKind.Answer));
            if (stopHere) { hit = true; break; }
        }
        if (hit) { seq.Finish(_pieces, FinishReason.Stop); lock (_lock) Complete(j, FinishReason.Stop); }
        else if (seq.Finished)
        {
            string tail = j.Stops.Flush();
            if (tail.Length > 0) j.Output.TryWrite(new ChatDelta(tail, TextKind.Answer));
            lock (_lock) Complete(j, seq.Result.FinishReason);
        }
    }

    /// <summary>Ends a job: its finish reason, its slot freed (under _lock).</summary>
    private void Complete(Job j, FinishReason finishReason)
    {
        j.Result.FinishReason = finishReason;
        j.Slot!.Release();
        j.End();
    }

    /// <summary>Fails a job whose session may hold partial work, and forgets that session's cache (under _lock).</summary>
    private void Reset(Job j, Exception e)
    {
        j.Slot?.Forget();
        Fail(j, e);
    }

    private void Fail(Job j, Exception e)
    {
        if (j.Slot != null) j.Slot.Job = null;
        j.End(e);
    }

    private void FailAll(Exception e)
    {
        foreach (var s in _slots) if (s.Job != null) Fail(s.Job, e);
        while (_waiting.Count > 0) _waiting.Dequeue().End(e);
    }

    /// <summary>Stops the scheduler and frees the slots' sessions (requests still running end as cancelled).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            Monitor.PulseAll(_lock);
        }
        _scheduler.Join();
        foreach (var s in _slots) s.Session.Dispose();
    }
}

