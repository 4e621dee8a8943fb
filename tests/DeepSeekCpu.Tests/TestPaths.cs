using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
namespace DeepSeekCpu.Tests;

/// <summary>
/// Locates test inputs. Fixtures are copied beside the test assembly (tests/fixtures/** linked as fixtures/**); when
/// running from elsewhere we walk up from the assembly folder to the repository's tests/fixtures.
/// </summary>
public static class TestPaths
{
    public static string FixturesRoot { get; } = FindFixtures();

    /// <summary>
    /// Load options with a float32 KV cache: the reference tests compare with float32 references at tight tolerances,
    /// so they pin the exact cache (the default, f16, is tested against them in KvCacheTypeTests).
    /// </summary>
    public static LoadOptions F32Cache { get; } = new() { CacheType = KvCacheType.F32 };

    /// <summary>Path under the fixtures folder, e.g. Fixture("tiny-qwen2", "config.json").</summary>
    public static string Fixture(params string[] parts) => Path.Combine([FixturesRoot, .. parts]);

    private static string FindFixtures()
    {
        string local = Path.Combine(AppContext.BaseDirectory, "fixtures");
        if (Directory.Exists(local)) return local;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "tests", "fixtures");
            if (Directory.Exists(p)) return p;
        }
        throw new DirectoryNotFoundException($"no fixtures folder beside {AppContext.BaseDirectory} or in a parent's tests/fixtures");
    }

    /// <summary>
    /// The llama2.c demo model (1 MB, not copied into fixtures): the CLI project copies models/stories260K to its
    /// output, which flows into the test output; otherwise the repository's models/ folder.
    /// </summary>
    public static string Stories260K { get; } = FindStories();

    private static string FindStories()
    {
        const string rel = "models/stories260K/stories260K.bin";
        string local = Path.Combine(AppContext.BaseDirectory, rel);
        if (File.Exists(local)) return local;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, rel);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"{rel} not found beside {AppContext.BaseDirectory} or in a parent folder");
    }

    /// <summary>A fresh temporary folder, deleted on Dispose.</summary>
    public static TempDir NewTempDir() => new();

    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dscpu-tests-" + Guid.NewGuid().ToString("N"));
        public TempDir() => Directory.CreateDirectory(Path);
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
