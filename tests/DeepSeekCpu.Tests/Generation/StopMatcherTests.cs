using DeepSeekCpu.Generation;
using Xunit;

namespace DeepSeekCpu.Tests.Generation;

/// <summary>Stop strings in streamed text: held back while undecided, cut before the first match, never emitted.</summary>
public class StopMatcherTests
{
    [Fact]
    public void Without_stop_strings_text_passes_through()
    {
        var m = new StopMatcher([]);
        Assert.Equal(("forty-two", false), m.Push("forty-two"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void A_stop_string_split_across_pieces_is_held_back_and_never_emitted()
    {
        var m = new StopMatcher(["forty-two"]);
        Assert.Equal(("The answer is ", false), m.Push("The answer is for"));   // "for" may start the stop string
        Assert.Equal(("", false), m.Push("ty-tw"));                             // "forty-tw" still may
        Assert.Equal(("", true), m.Push("o, surely."));                         // reached: nothing after it
    }

    [Fact]
    public void A_false_start_is_released_when_the_next_piece_decides_it()
    {
        var m = new StopMatcher(["forty-two"]);
        Assert.Equal(("a ", false), m.Push("a fort"));
        Assert.Equal(("fortress", false), m.Push("ress"));
        Assert.Equal(("", false), m.Push("forty"));
        Assert.Equal("forty", m.Flush());                                       // the end of the stream decides the rest
    }

    [Fact]
    public void The_earliest_of_several_stop_strings_cuts_and_empty_ones_are_ignored()
    {
        var m = new StopMatcher(["", "world", "lo"]);
        Assert.Equal(("hel", true), m.Push("hello world"));
    }
}
