using System.Runtime.CompilerServices;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>A rendered chat prompt with what its answer needs to be read back: the tools offered and the text forced
/// at the answer's start (tool_choice "required" or a named function).</summary>
internal sealed record ChatPrompt(int[] Tokens, bool StartsInReasoning, ToolOptions? Tools = null, ToolCallFormat Format = default, string Prefill = "")
{
    /// <summary>A parser for one answer (null when no tools are offered).</summary>
    public ToolCallParser? NewParser() =>
        Tools is { Active: true } t ? new ToolCallParser(Format, t.Tools.Select(d => d.Name).ToHashSet(StringComparer.Ordinal)) : null;
}

public sealed partial class ChatEngine
{
    /// <summary>
    /// <see cref="RenderChat(IReadOnlyList{ChatMessage}, bool?, out bool, CancellationToken)"/> with tools: the tool list
    /// goes into the system prompt (<see cref="ToolPrompt"/>), and tool_choice "required" or a named function starts
    /// the answer with the call's markers (and name), after an empty reasoning block where the prompt opened one.
    /// Throws <see cref="ArgumentException"/> when tools are offered to a model whose template has no call format.
    /// </summary>
    internal ChatPrompt PrepareChat(IReadOnlyList<ChatMessage> messages, bool? thinking, ToolOptions? tools, CancellationToken cancel = default)
    {
        if (tools is not { Active: true })
            return new ChatPrompt(RenderChat(messages, thinking, out bool r, cancel), r, tools);
        if (Tokenizer.ChatTemplate?.ToolCallFormat is not { } format)
            throw new ArgumentException("this model's chat template has no tool-call format (tools are supported with the DeepSeek R1/V3/V3.1 templates and the V3.2/V4 encodings)");
        if (tools.Choice == ToolChoiceMode.Function && !tools.Tools.Any(t => t.Name == tools.Function))
            throw new ArgumentException($"tool_choice names the function '{tools.Function}', which is not among the tools");
        if (messages.Count == 0) throw new ArgumentException("there are no messages");
        var withTools = ToolPrompt.Apply(messages, tools.Tools, format);
        string text = Tokenizer.ChatTemplate.Render(withTools, addGenerationPrompt: true, thinking);
        bool reasoning = text.EndsWith("<think>\n", StringComparison.Ordinal) || text.EndsWith("<think>", StringComparison.Ordinal);
        string prefill = "";
        if (tools.Choice is ToolChoiceMode.Required or ToolChoiceMode.Function)
        {
            // a forced call has no room for free reasoning: the opened block is closed empty (DSML's prefill starts
            // with the blank line V3.2/V4 write before a block)
            prefill = ToolPrompt.Prefill(format, tools.Choice == ToolChoiceMode.Function ? tools.Function : null);
            text += (reasoning ? R1ChatTemplate.ThinkClose + (ToolPrompt.IsDsml(format) ? "" : "\n\n") : "") + prefill;
            reasoning = false;
        }
        return new ChatPrompt(Tokenizer.Encode(text, addSpecial: false, cancel), reasoning, tools, format, prefill);
    }

    /// <summary>
    /// The answer of <paramref name="deltas"/> with its tool calls read out (<see cref="ToolCallParser"/>): text passes
    /// through, each call comes as it is generated (<see cref="ChatDelta.Fragment"/>: its start, then pieces of its
    /// arguments) and then whole (<see cref="ChatDelta.Call"/>); with parallel calls off, the stream (and the
    /// generation) ends after the first call. Without tools the deltas pass unchanged.
    /// </summary>
    internal static async IAsyncEnumerable<ChatDelta> ReadToolCalls(IAsyncEnumerable<ChatDelta> deltas, ChatPrompt prompt,
        [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var parser = prompt.NewParser();
        if (parser == null)
        {
            await foreach (var d in deltas.WithCancellation(cancel).ConfigureAwait(false)) yield return d;
            yield break;
        }
        var events = new List<ToolCallEvent>();
        parser.Push(prompt.Prefill, events);   // a forced call's start (a named one may already start here)
        foreach (var e in events) yield return Delta(e);
        bool single = !prompt.Tools!.ParallelCalls;
        await foreach (var d in deltas.WithCancellation(cancel).ConfigureAwait(false))
        {
            if (d.Kind != TextKind.Answer || d.Logprob != null) { yield return d; continue; }
            events.Clear();
            parser.Push(d.Text, events);
            foreach (var e in events)
            {
                yield return Delta(e);
                if (single && e.Call != null) yield break;
            }
        }
        events.Clear();
        parser.Flush(events);
        foreach (var e in events) yield return Delta(e);
    }

    private static ChatDelta Delta(ToolCallEvent e) =>
        e.Call is { } call ? new ChatDelta("", TextKind.Answer) { Call = call }
        : e.Fragment is { } f ? new ChatDelta("", TextKind.Answer) { Fragment = f }
        : new ChatDelta(e.Text!, TextKind.Answer);
}
