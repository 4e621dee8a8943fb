namespace DeepSeekCpu.Tokenization;

/// <summary>
/// What the engine needs from a tokenizer. Implementations: <see cref="Llama2cTokenizer"/> (engine, demo model),
/// and the byte-level BPE tokenizers of tokenizer.json / GGUF in the DeepSeekCpu.Tokenizers project.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of token ids (including added/special tokens).</summary>
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, read from the tokenizer files (null when the model has none).</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id, read from the tokenizer files.</summary>
    int? EosId { get; }

    /// <summary>Ids that end generation (EOS plus e.g. end-of-turn tokens).</summary>
    IReadOnlySet<int> StopIds { get; }

    /// <summary>
    /// Encodes text. Special/added tokens written literally in the text (e.g. "&lt;｜User｜&gt;") are recognised.
    /// BOS (and EOS where the tokenizer's post-processor adds one) only when <paramref name="addSpecial"/>.
    /// </summary>
    int[] Encode(string text, bool addSpecial = false);

    /// <summary>
    /// <see cref="Encode(string, bool)"/> that stops with <see cref="OperationCanceledException"/> once
    /// <paramref name="cancel"/> fires (implementations check it between pieces of the text), so a server can drop the
    /// work of a client that left.
    /// </summary>
    int[] Encode(string text, bool addSpecial, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        return Encode(text, addSpecial);
    }

    /// <summary>Decodes ids to text (invalid UTF-8 becomes U+FFFD).</summary>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>
    /// The raw bytes one token stands for (UTF-8 fragments for byte-level BPE). The streaming decoder joins these
    /// so that a multi-byte character split across tokens is never emitted broken.
    /// </summary>
    ReadOnlySpan<byte> TokenBytes(int id);

    /// <summary>Id of a token given its exact vocabulary string (e.g. "&lt;/think&gt;"), or null.</summary>
    int? TokenToId(string token);

    /// <summary>The chat template the model ships with, or null for plain-completion models.</summary>
    internal IChatTemplate? ChatTemplate { get; }

    /// <summary>True when the model ships a chat template this engine renders (<see cref="Generation.ChatEngine.RenderChat(IReadOnlyList{ChatMessage}, out bool, CancellationToken)"/>
    /// then writes the conversation in it); false for plain-completion models, whose chats go as plain text.</summary>
    bool HasChatTemplate => ChatTemplate != null;
}

/// <summary>A message of a conversation, rendered by the model's chat template.</summary>
/// <param name="Role">Who speaks: "system", "user", "assistant" or "tool".</param>
/// <param name="Content">What is said.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>An assistant turn's tool calls (OpenAI <c>tool_calls</c>); null when it made none. With calls, an empty
    /// <see cref="Content"/> stands for the JSON null the clients send.</summary>
    internal IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>An assistant turn's reasoning (OpenAI-style <c>reasoning_content</c>), for the encodings that write it back
    /// (V3.2 and V4 in thinking mode); null when not given. The Jinja templates read only <see cref="Content"/>.</summary>
    public string? Reasoning { get; init; }

    /// <summary>A tool result's <c>tool_call_id</c>: V4 orders results by their calls' order.</summary>
    internal string? ToolCallId { get; init; }

    /// <summary>Tools offered in a system message, for the encodings that render them themselves (V3.2, V4: DeepSeek's
    /// encoders read <c>tools</c> from the system message); see <see cref="ToolPrompt.Apply"/>.</summary>
    internal IReadOnlyList<ToolDefinition>? Tools { get; init; }
}

/// <summary>Renders a conversation to prompt text.</summary>
internal interface IChatTemplate
{
    /// <summary>Renders the conversation; with <paramref name="addGenerationPrompt"/> it ends where the assistant starts.</summary>
    string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true);

    /// <summary>True when the generation prompt already opens a reasoning block ("&lt;think&gt;\n").</summary>
    bool OpensReasoning { get; }

    /// <summary>
    /// Renders with a hybrid template's thinking switch (DeepSeek-V3.1's Jinja variable <c>thinking</c>): true or false
    /// choose the mode, null keeps the template's default. Templates without a switch ignore it.
    /// </summary>
    string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, bool? thinking) => Render(messages, addGenerationPrompt);

    /// <summary>True when <see cref="Render(IReadOnlyList{ChatMessage}, bool, bool?)"/>'s thinking argument changes the prompt.</summary>
    bool HasThinkingSwitch => false;

    /// <summary>How the template writes tool calls (and so how the model's are read back); null: it has no tool calls.</summary>
    ToolCallFormat? ToolCallFormat => null;
}
