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
        model.Gated = true;
        model.Poison = tok.Encode("poison")[0];
        using var e = new ChatEngine(model, tok, slots: 2);
        var good = Answer(e, "a normal question");
        await model.Steps(4);                                                // its prompt and three tokens: it is decoding
        var poisoned = Answer(e, "poison");                                  // fails in its prompt pass (before the gate)
        await model.Steps(1);                                                // the scheduler takes it within one more pass
        await Assert.ThrowsAsync<InvalidOperationException>(() => poisoned);
        Assert.False(good.IsCompleted, "the good request is still decoding, held at the gate");
        model.Gated = false;
        Assert.Equal(answer, await good);
        Assert.Equal(answer, await Answer(e, "and the engine still serves"));
    }

    [Fact]
    public async Task A_request_cancelled_while_waiting_for_a_slot_ends_before_the_running_one()
    {
        var (model, tok, _, answer) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 40)) + "\n", "\n\nDone.");
        model.Gated = true;
        using var e = new ChatEngine(model, tok, slots: 1);
        var running = Answer(e, "first");
        await model.Steps(2);                                                // its prompt and first token: it holds the slot
        var next = Answer(e, "second");                                     // first in line
        using var cts = new CancellationTokenSource();
        var waiting = Answer(e, "third", cts.Token);                         // behind it
        cts.Cancel();
        await model.Steps(1);                                                // the scheduler sees the line between two passes
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.False(running.IsCompleted, "the cancelled request waited for the running one to finish");
        Assert.False(next.IsCompleted, "the request in line was dropped with the cancelled one");
        model.Gated = false;
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
        var second = await e.CompleteAsync(p2, r, new GenerationRequest());
        int fedPrompt = model.TokensFed - before - (model.Script.Length - 1);
        Assert.True(fedPrompt < p1.Length / 2, $"conversation A's next turn fed {fedPrompt} prompt tokens of {p2.Length}: its cache was lost");
        // PromptTokens is the whole prompt (what usage reports); the processed part is what the model was fed
        Assert.Equal(p2.Length, second.PromptTokens);
        Assert.Equal(fedPrompt, second.ProcessedPromptTokens);
        Assert.Equal(p2.Length - fedPrompt, second.CachedPromptTokens);
    }

    [Fact]
    public async Task A_prompt_must_leave_one_position_and_the_answer_runs_until_the_cache_is_full()
    {
        var (model, tok, _, _) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("step ", 100)), "Done.");
        const int ctx = 48;
        using var e = new ChatEngine(model, tok, slots: 1, contextLength: ctx);
        var prompt = e.RenderChat([new ChatMessage("user", "Count.")], out bool r);
        var result = await e.CompleteAsync(prompt, r, new GenerationRequest());
        Assert.Equal(FinishReason.Length, result.FinishReason);
        // the token sampled from the cache's last position is the last one: ctx - prompt + 1 tokens, all but it fed
        Assert.Equal(ctx - prompt.Length + 1, result.CompletionTokens);
        Assert.Equal(ctx, model.TokensFed);

        int word = tok.Encode(" step")[0];
        var longest = await e.CompleteAsync(Enumerable.Repeat(word, ctx - 1).ToArray(), false, new GenerationRequest());
        Assert.Equal(2, longest.CompletionTokens);
        var ex = Assert.Throws<ArgumentException>(() => e.Check(Enumerable.Repeat(word, ctx).ToArray(), new GenerationRequest()));
        Assert.Contains($"{ctx}", ex.Message);

        var budget = await e.CompleteAsync(prompt, r, new GenerationRequest { MaxTokens = 5 });
        Assert.Equal((FinishReason.Length, 5), (budget.FinishReason, budget.CompletionTokens));
    }
}
