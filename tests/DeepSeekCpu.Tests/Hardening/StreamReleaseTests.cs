using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tests.Serving;
using ChatMessage = DeepSeekCpu.Tokenization.ChatMessage;
using Microsoft.Extensions.AI;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// A stream stopped early (Ctrl+C in chat, a caller breaking out of the loop) must release its slot at once, even with
/// deltas still buffered: StreamAsync used to wait for channel.Reader.Completion, which completes only when every
/// buffered delta has been read, so it waited forever (issue 11). Each wait here is bounded.
/// </summary>
public class StreamReleaseTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private static async Task<string> Answer(ChatEngine e, string user)
    {
        var prompt = e.RenderChat([new ChatMessage("user", user)], out bool reasoning);
        return (await e.CompleteAsync(prompt, reasoning, new GenerationRequest())).Content;
    }

    /// <summary>Reads the first delta, lets a few more be produced and buffered, then breaks out of the loop.</summary>
    private static async Task ReadOneThenBreak(IAsyncEnumerable<object> stream, ScriptedModel model)
    {
        await foreach (var _ in stream)
        {
            await model.Steps(3);                  // three more tokens decoded into the channel, unread
            await Task.Delay(200);                 // (their deltas are written right after each pass)
            model.Gated = false;                   // the scheduler runs on and sees the stream was left
            break;
        }
    }

    [Fact]
    public async Task Breaking_out_of_ChatEngine_StreamAsync_with_deltas_buffered_frees_the_slot_at_once()
    {
        var (model, tok, _, answer) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 40)) + "\n", "\n\nDone.");
        model.Gated = true;
        using var e = new ChatEngine(model, tok, slots: 1);
        var prompt = e.RenderChat([new ChatMessage("user", "first")], out bool reasoning);
        var first = Task.Run(async () =>
        {
            var stream = e.StreamAsync(prompt, reasoning, new GenerationRequest());
            await ReadOneThenBreak(Cast(stream), model);
        });
        await model.Steps(2);                      // the prompt and the first token
        await first.WaitAsync(Bound);              // hung here before the fix
        // the one slot serves the next request
        Assert.Equal(answer, await Answer(e, "second").WaitAsync(Bound));
    }

    [Fact]
    public async Task Breaking_out_of_IChatClient_streaming_frees_the_engine_at_once()
    {
        var (model, tok, _, answer) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 40)) + "\n", "\n\nDone.");
        model.Gated = true;
        using var engine = new ChatEngine(model, tok, slots: 1);
        IChatClient client = new DeepSeekChatClient(engine, "r1-scripted");
        var first = Task.Run(() => ReadOneThenBreak(Cast(client.GetStreamingResponseAsync("first")), model));
        await model.Steps(2);
        await first.WaitAsync(Bound);
        var response = await client.GetResponseAsync("second").WaitAsync(Bound);
        Assert.Equal(answer, response.Text);
    }

    [Fact]
    public async Task Cancelling_a_stream_with_deltas_buffered_ends_it_at_once()
    {
        var (model, tok, _, answer) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 40)) + "\n", "\n\nDone.");
        model.Gated = true;
        using var e = new ChatEngine(model, tok, slots: 1);
        var prompt = e.RenderChat([new ChatMessage("user", "first")], out bool reasoning);
        using var cts = new CancellationTokenSource();
        var result = new GenerationResult();
        var first = Task.Run(async () =>
        {
            await foreach (var _ in e.StreamAsync(prompt, reasoning, new GenerationRequest(), result, cts.Token))
            {
                Assert.False(cts.IsCancellationRequested, "a delta came after the cancellation");
                await model.Steps(3);
                await Task.Delay(200);
                cts.Cancel();                       // Ctrl+C while deltas wait in the channel
                model.Gated = false;
            }
        });
        await model.Steps(2);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(Bound));
        Assert.Equal(FinishReason.Cancelled, result.FinishReason);
        Assert.Equal(answer, await Answer(e, "second").WaitAsync(Bound));
    }

    private static async IAsyncEnumerable<object> Cast<T>(IAsyncEnumerable<T> source)
    {
        await foreach (var x in source) yield return x!;
    }
}
