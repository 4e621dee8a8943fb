using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Calls in the R1/V3 (fenced JSON) and V3.1 formats as they are generated: a start once the name is read and the
/// arguments open an object, then the arguments in pieces that join to exactly the whole call's arguments, and a call
/// that breaks after its start abandoned (its text then comes as text, as for any malformed call).
/// </summary>
public class ToolCallFragmentTests
{
    private static (string Text, List<ToolCall> Calls, List<ToolCallFragment> Fragments) ParseAll(ToolCallFormat format, IEnumerable<string> pieces) =>
        DsmlToolCallTests.ParseAll(format, pieces, ["search", "get_weather"]);

    private static IEnumerable<string> Chars(string s) => DsmlToolCallTests.Chars(s);

    [Theory]
    [InlineData(nameof(ToolCallFormat.FencedJson), "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", \"days\": [1, 2]}\n```<｜tool▁call▁end｜>\n"
        + "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"q\": \"a ` b\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData(nameof(ToolCallFormat.NameSeparator), "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"你好 🚀\", \"n\": 3}<｜tool▁call▁end｜>"
        + "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>  {\"city\": \"Rome\"}  <｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    public void Arguments_arrive_in_pieces_that_join_to_the_whole_call(string formatName, string output)
    {
        var format = Enum.Parse<ToolCallFormat>(formatName);   // by name: the type is internal, the test public
        var (_, whole, _) = ParseAll(format, [output]);
        var (text, calls, fragments) = ParseAll(format, Chars(output));
        Assert.Equal(2, calls.Count);
        Assert.Equal(whole.Select(c => (c.Name, c.Arguments)), calls.Select(c => (c.Name, c.Arguments)));
        DsmlToolCallTests.AssertFragmentsMakeTheCalls(fragments, calls);
        Assert.DoesNotContain(fragments, f => f.Kind == ToolCallFragmentKind.Abandoned);
        // generated character by character, the arguments came in many pieces, none after its call was whole
        Assert.True(fragments.Count(f => f.Index == 0 && f.Kind == ToolCallFragmentKind.Arguments) > 10);
        Assert.Equal(format == ToolCallFormat.FencedJson ? "Let me check." : "", text);
        // one piece at once (the whole output) still gives a start and the arguments
        var (_, calls1, fragments1) = ParseAll(format, [output]);
        DsmlToolCallTests.AssertFragmentsMakeTheCalls(fragments1, calls1);
    }

    [Fact]
    public void A_call_whose_arguments_break_is_abandoned_at_the_first_wrong_character()
    {
        string output = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": oops}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        var (text, calls, fragments) = ParseAll(ToolCallFormat.NameSeparator, Chars(output));
        Assert.Empty(calls);
        Assert.Equal(output.Replace("<｜tool▁calls▁end｜>", ""), text);
        Assert.Equal(ToolCallFragmentKind.Start, fragments[0].Kind);
        Assert.Equal(ToolCallFragmentKind.Abandoned, fragments[^1].Kind);
        // nothing past the valid start of the object was sent
        Assert.Equal("{\"q\":", string.Concat(fragments.Where(f => f.Kind == ToolCallFragmentKind.Arguments).Select(f => f.Arguments)));
    }

    [Theory]
    // not an object, an unknown function, no separator: never started
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>[1, 2]<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>delete_all<｜tool▁sep｜>{}<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search {\"q\": \"x\"}<｜tool▁call▁end｜>")]
    public void A_call_that_is_wrong_before_its_arguments_never_starts(string output)
    {
        var (text, calls, fragments) = ParseAll(ToolCallFormat.NameSeparator, Chars(output));
        Assert.Empty(calls);
        Assert.Empty(fragments);
        Assert.Equal(output, text);
    }

    [Fact]
    public void A_call_cut_off_by_the_end_of_the_answer_is_abandoned_and_kept_as_text()
    {
        string output = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"q\": \"unfinished";
        var (text, calls, fragments) = ParseAll(ToolCallFormat.FencedJson, Chars(output));
        Assert.Empty(calls);
        Assert.Equal(output, text);
        Assert.Equal(ToolCallFragmentKind.Abandoned, fragments[^1].Kind);
    }
}
