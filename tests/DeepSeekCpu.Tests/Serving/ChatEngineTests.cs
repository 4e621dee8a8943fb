using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>The engine under the server: context limits, failure isolation, cancellation in line, slot choice.</summary>
public class ChatEngineTests
{
    private static async Task<string> Answer(ChatEngine e, string user, CancellationToken cancel = default)
    {
        var prompt = e.RenderChat([new ChatMessage("user", user)], out bool reasoning);
        return (await e.CompleteAsync(prompt, reasoning, new GenerationRequest(), cancel)).Content;
    }

    [Fact]
    public void The_context_is_what_the_sessions_hold_and_longer_prompts_are_refused()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);              // max_seq_len 512
        using var e = new ChatEngine(lm.Model, lm.Tokenizer, 1, contextLength: 100_000);
        Assert.Equal(512, e.ContextLength);
        var prompt = e.RenderCompletion(string.Join(" ", Enumerable.Repeat("Once upon a time", 200)));
        Assert.True(prompt.Length > 512);
        var ex = Assert.Throws<ArgumentException>(() => e.Check(prompt, new GenerationRequest()));
        Assert.Contains("512", ex.Message);
    }

    [Fact]
    public async Task A_failing_request_does_not_fail_the_others()
    {
        var (model, tok, _, answer) = ScriptedModel.R1("Let me think about this for a while.\n", "\n\nFine, done.");
        model.DelayMs = 5;
        model.Poison = tok.Encode("poison")[0];
        using var e = new ChatEngine(model, tok, slots: 2);
        var good = Answer(e, "a normal question");
        await Task.Delay(50);                                                // the good one is decoding
        await Assert.ThrowsAsync<InvalidOperationException>(() => Answer(e, "poison"));
        Assert.Equal(answer, await good);
        Assert.Equal(answer, await Answer(e, "and the engine still serves"));
    }

    [Fact]
    public async Task A_request_cancelled_while_waiting_for_a_slot_ends_before_the_running_one()
    {
        var (model, tok, _, answer) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 40)) + "\n", "\n\nDone.");
        model.DelayMs = 10;                                                  // about 0.5 s of generation
        using var e = new ChatEngine(model, tok, slots: 1);
        var running = Answer(e, "first");
        await Task.Delay(30);
        var next = Answer(e, "second");                                     // first in line
        using var cts = new CancellationTokenSource();
        var waiting = Answer(e, "third", cts.Token);                         // behind it
        await Task.Delay(30);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.False(running.IsCompleted, "the cancelled request waited for the running one to finish");
        Assert.Equal(answer, await running);
        Assert.Equal(answer, await next);
    }

    [Fact]
    public async Task A_new_conversation_takes_an_unused_slot_instead_of_overwriting_a_cached_one()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Hmm.\n", "\n\nSure.");
        using var e = new ChatEngine(model, tok, slots: 2);
        string longSystem = string.Join(" ", Enumerable.Repeat("You answer briefly and precisely.", 20));
        List<ChatMessage> a1 = [new("system", longSystem), new("user", "First question")];
        var p1 = e.RenderChat(a1, out bool r);
        await e.CompleteAsync(p1, r, new GenerationRequest());
        await Answer(e, "An unrelated conversation");                        // must not evict conversation A
        int before = model.TokensFed;
        List<ChatMessage> a2 = [.. a1, new("assistant", answer), new("user", "Second question")];
        var p2 = e.RenderChat(a2, out r);
        await e.CompleteAsync(p2, r, new GenerationRequest());
        int fedPrompt = model.TokensFed - before - (model.Script.Length - 1);
        Assert.True(fedPrompt < p1.Length / 2, $"conversation A's next turn fed {fedPrompt} prompt tokens of {p2.Length}: its cache was lost");
    }
}
