using System.Globalization;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

/// <summary>A usage error: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Minimal GNU-style argument parser: "-m X", "--model X", "--model=X", flags. Every option a command accepts is
/// declared, so a misspelt option is an error that names it rather than being ignored.
/// </summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, string?> _values = new();
    private readonly string _command;

    public CliArgs(string command, string[] args, string[] valueOptions, string[] flags, Dictionary<string, string>? aliases = null)
    {
        _command = command;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string? inline = null;
            int eq = a.IndexOf('=');
            if (a.StartsWith("--") && eq > 0) { inline = a[(eq + 1)..]; a = a[..eq]; }
            if (aliases != null && aliases.TryGetValue(a, out var full)) a = full;
            if (valueOptions.Contains(a))
            {
                string? v = inline ?? (i + 1 < args.Length ? args[++i] : null);
                if (v == null) throw new UsageException($"{command}: option {a} needs a value");
                _values[a] = v;
            }
            else if (flags.Contains(a))
            {
                if (inline != null) throw new UsageException($"{command}: option {a} takes no value");
                _values[a] = null;
            }
            else throw new UsageException($"{command}: unknown argument '{args[i]}' (see 'deepseek-cpu help')");
        }
    }

    public bool Has(string name) => _values.ContainsKey(name);
    public string? Str(string name) => _values.TryGetValue(name, out var v) ? v : null;
    public string Req(string name) => Str(name) ?? throw new UsageException($"{_command}: option {name} is required");

    public int Int(string name, int def, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = Str(name);
        if (s == null) return def;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new UsageException($"{_command}: option {name} expects an integer{(min > int.MinValue ? $" >= {min}" : "")}{(max < int.MaxValue ? $" <= {max}" : "")}, got '{s}'");
        return v;
    }

    public float Float(string name, float def, float min = float.MinValue, float max = float.MaxValue)
    {
        var s = Str(name);
        if (s == null) return def;
        if (!float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) || float.IsNaN(v) || v < min || v > max)
            throw new UsageException($"{_command}: option {name} expects a number in [{min}, {max}], got '{s}'");
        return v;
    }

    /// <summary>
    /// The load options of the model-loading commands: --threads N (0: one per physical core) and --no-mmap (read the
    /// weights into private memory; see <see cref="WeightMemory"/>), --cache-type f32|f16|bf16|q8_0 (the KV cache's
    /// storage, default f16), with <paramref name="transform"/> (--quant).
    /// </summary>
    public LoadOptions LoadOptions(Func<WeightMatrix, WeightMatrix>? transform = null) => new()
    {
        Graph = Backends.Graph(this, _command),   // --backend torch: DeepSeekCpu.Torch builds the graph
        Threads = Int("--threads", 0, 0, 1024),
        Memory = Has("--no-mmap") ? WeightMemory.Anonymous : WeightMemory.Mmap,
        CacheType = CacheType(),
        MatrixTransform = transform,
        Repack = OnOff("--repack", true),
    };

    /// <summary>An option that takes on|off (--repack).</summary>
    public bool OnOff(string name, bool def) => Str(name) switch
    {
        null => def,
        "on" => true,
        "off" => false,
        var s => throw new UsageException($"{_command}: option {name} expects on or off, got '{s}'"),
    };

    /// <summary>--cache-type f32|f16|bf16|q8_0 (default f16).</summary>
    public KvCacheType CacheType() => Str("--cache-type") is not { } s ? KvCacheType.F16
        : KvCache.Parse(s) ?? throw new UsageException($"{_command}: option --cache-type expects f32, f16, bf16 or q8_0, got '{s}'");

    public ulong? ULong(string name)
    {
        var s = Str(name);
        if (s == null) return null;
        if (!ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v))
            throw new UsageException($"{_command}: option {name} expects a non-negative integer, got '{s}'");
        return v;
    }
}
