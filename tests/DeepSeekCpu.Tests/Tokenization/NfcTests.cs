using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Our NFC/NFD against values from Python's unicodedata.normalize (an independent implementation); needed because
/// string.Normalize is a no-op under InvariantGlobalization.
/// </summary>
public class NfcTests
{
    [Theory]
    [InlineData("e\u0301", "\u00E9", "e\u0301")]                                     // compose
    [InlineData("\u0387", "\u00B7", "\u00B7")]                                       // singleton decomposition
    [InlineData("\u1100\u1161\u11A8", "\uAC01", "\u1100\u1161\u11A8")]               // Hangul L V T
    [InlineData("\uAC00\u11A8", "\uAC01", "\u1100\u1161\u11A8")]                     // Hangul LV + T
    [InlineData("a\u0302\u0323", "\u1EAD", "a\u0323\u0302")]                         // canonical reordering first
    [InlineData("\u212B", "\u00C5", "A\u030A")]                                      // Angstrom sign
    [InlineData("\u0958", "\u0915\u093C", "\u0915\u093C")]                           // composition exclusion
    [InlineData("\U00011099\U000110BA", "\U0001109A", "\U00011099\U000110BA")]       // astral composition
    [InlineData("A\u030A\u0301", "\u01FA", "A\u030A\u0301")]                         // composes twice
    [InlineData("q\u0307\u0323", "q\u0323\u0307", "q\u0323\u0307")]                  // reordered, nothing to compose
    [InlineData("plain ASCII, 日本語", "plain ASCII, 日本語", "plain ASCII, 日本語")]
    public void Matches_unicodedata(string input, string nfc, string nfd)
    {
        Assert.Equal(nfc, Nfc.Normalize(input));
        Assert.Equal(nfd, Nfc.Decompose(input));
    }

    [Fact]
    public void Already_normal_text_is_returned_as_is()
    {
        string s = "café naïve 😀 Straße";
        Assert.Same(s, Nfc.Normalize(s));
    }
}
