using System.Reflection;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using Xunit;

namespace DeepSeekCpu.Tests;

/// <summary>
/// The packages' public API is what build/public-api.txt lists (issue 15: "the public API is small and documented;
/// everything else is internal"): the library assemblies export exactly those types, so a type made public by
/// accident, or a listed one that became internal, fails here. build/internalize.py makes the others internal.
/// </summary>
public class PublicApiTests
{
    [Fact]
    public void The_library_assemblies_export_exactly_the_types_of_build_public_api_txt()
    {
        var listed = File.ReadAllLines(ApiList())
            .SelectMany(l => l.Split('#')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assembly[] libraries =
        [
            typeof(ChatEngine).Assembly, typeof(DeepSeekCpu.Tokenizers.TokenizerLoader).Assembly, typeof(DeepSeekCpu.Hub.ModelLocator).Assembly,
            typeof(LocalModel).Assembly, typeof(DeepSeekChatClient).Assembly, typeof(DeepSeekCpu.Torch.TorchBackend).Assembly,
        ];
        var exported = libraries.SelectMany(a => a.GetExportedTypes()).Select(t => t.IsNested ? t.FullName! : t.Name).ToList();
        Assert.Equal(listed.Order(), exported.Order());
        Assert.True(listed.Count <= 25, $"{listed.Count} public types: the API an application uses is meant to stay small");
    }

    /// <summary>build/public-api.txt, found upwards from the test's folder (the repository the tests were built in).</summary>
    private static string ApiList()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "build", "public-api.txt");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"build/public-api.txt not found above {AppContext.BaseDirectory}");
    }
}
