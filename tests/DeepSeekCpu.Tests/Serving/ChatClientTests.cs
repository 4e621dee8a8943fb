using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using Microsoft.Extensions.AI;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>The Microsoft.Extensions.AI IChatClient adapter, as an application uses it.</summary>
public class ChatClientTests
{
    [Fact]
    public async Task Response_carries_the_answer_as_text_and_the_reasoning_apart()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Count: one, two, three.\n", "\n\nThree.");
        using var engine = new ChatEngine(model, tok);
        IChatClient client = new DeepSeekChatClient(engine, "r1-scripted");
        var response = await client.GetResponseAsync("How many r's are in strawberry?");
        Assert.Equal(answer, response.Text);
        var message = Assert.Single(response.Messages);
        Assert.Equal(ChatRole.Assistant, message.Role);
        Assert.Equal(reasoning, Assert.Single(message.Contents.OfType<TextReasoningContent>()).Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(model.Script.Length, response.Usage!.OutputTokenCount);
        Assert.Equal("r1-scripted", response.ModelId);
        Assert.Equal("r1-scripted", client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }

    [Fact]
    public async Task Streaming_updates_add_up_to_the_answer_and_end_with_finish_reason_and_usage()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Thinking it over.\n", "\n\nYes, **indeed**.");
        using var engine = new ChatEngine(model, tok);
        IChatClient client = new DeepSeekChatClient(engine, "r1-scripted");
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Sure?")])) updates.Add(u);
        Assert.True(updates.Count > 3);
        Assert.Equal(answer, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(reasoning, string.Concat(updates.SelectMany(u => u.Contents.OfType<TextReasoningContent>()).Select(c => c.Text)));
        Assert.Equal(ChatFinishReason.Stop, updates[^1].FinishReason);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        var response = updates.ToChatResponse();   // M.E.AI's own aggregation
        Assert.Equal(answer, response.Text);
        Assert.Equal(model.Script.Length, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Options_map_onto_sampling_and_the_demo_model_tells_the_reference_story()
    {
        // No chat template: the user message is the text to continue, greedy at Temperature 0.
        using IChatClient client = new DeepSeekChatClient(LocalModel.Load(TestPaths.Stories260K));
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 20 });
        Assert.StartsWith(", there was a little girl", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(20, response.Usage!.OutputTokenCount);

        var stopped = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 20, StopSequences = ["girl"] });
        Assert.Equal(", there was a little ", stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);

        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync("x", new ChatOptions { Temperature = -1 }));
        // OpenAI's penalty range [-2, 2] (the penalties themselves are tested in OpenAiFieldTests)
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync("x", new ChatOptions { FrequencyPenalty = 2.5f }));
    }
}
