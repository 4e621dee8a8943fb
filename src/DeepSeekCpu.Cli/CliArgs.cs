using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

// The command line on System.CommandLine (2.0.x): every command declares its options with their defaults, so
// `deepseek-cpu COMMAND --help` lists them, a misspelt option is a one-line error with a suggestion, and the
// [suggest] directive (used by `deepseek-cpu completion bash|zsh`) completes them.
//
// Adding an option to a command: one declaration plus one read.
//   1. Declare it on one line in the command's list (e.g. ServeCommand.cs, `ServeCommand()`), with a factory of Opt:
//        Opt.Text("--log-format", "text", "log lines as text or json", "text|json"),
//        Opt.Int("--reasoning-budget", -1, "tokens of reasoning before the answer is forced (-1: no limit)", min: -1),
//        Opt.Flag("--cors", "answer cross-origin requests"),
//      (aliases go last: Opt.Int("--threads", 0, "...", min: 0, aliases: ["-t"])). Options shared by several
//      commands are a method returning Option[] (Sampling(), Load()), spread into each list with `..`.
//   2. Read it in the command's body through its CliArgs by its long name:
//        string format = a.Str("--log-format");  int budget = a.Int("--reasoning-budget");  bool cors = a.Has("--cors");
//      The declared default applies when the option is not given; a.Given(name) tells whether it was.
// Typed values (Opt.Int/Float/ULong) are checked while parsing: a bad value is a usage error (exit 2, one line) that
// names the option and the range; checks that involve several options stay in the body (throw UsageException).

/// <summary>A usage error: printed as one line, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Option factories: a declaration is one line with the name, the default (shown by --help), the help text,
/// the accepted range and the aliases.</summary>
internal static class Opt
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>A text value; <paramref name="def"/> null means "not given" (the help text says what then happens).
    /// <paramref name="values"/> ("a|b|c") is the list shown in help and offered by completion; the body checks it.</summary>
    public static Option<string> Text(string name, string? def, string description, string? values = null, string[]? aliases = null)
    {
        var o = new Option<string>(name, aliases ?? []) { Description = description, HelpName = values ?? ValueName(name) };
        if (def != null) o.DefaultValueFactory = _ => def;
        if (values != null) o.CompletionSources.Add(values.Split('|'));
        return o;
    }

    /// <summary>A flag: given or not.</summary>
    public static Option<bool> Flag(string name, string description, string[]? aliases = null) =>
        new(name, aliases ?? []) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>on|off, read with <see cref="CliArgs.OnOff"/>.</summary>
    public static Option<string> OnOff(string name, bool def, string description)
    {
        var o = Text(name, def ? "on" : "off", description, "on|off");
        o.Validators.Add(r => { if (Token(r) is { } v && v is not ("on" or "off")) r.AddError($"option {name} expects on or off, got '{v}'"); });
        return o;
    }

    public static Option<int> Int(string name, int def, string description, int min = int.MinValue, int max = int.MaxValue, string[]? aliases = null) =>
        new(name, aliases ?? [])
        {
            Description = description, HelpName = "N", DefaultValueFactory = _ => def,
            CustomParser = r => ParseInt(r, name, min, max) ?? def,
        };

    /// <summary>An integer without a fixed default (the body decides, e.g. --ctx from the model's limit).</summary>
    public static Option<int?> IntOrNull(string name, string description, int min = int.MinValue, int max = int.MaxValue, string[]? aliases = null) =>
        new(name, aliases ?? []) { Description = description, HelpName = "N", CustomParser = r => ParseInt(r, name, min, max) };

    public static Option<float> Float(string name, float def, string description, float min = float.MinValue, float max = float.MaxValue, string[]? aliases = null) =>
        new(name, aliases ?? [])
        {
            Description = description, HelpName = "X", DefaultValueFactory = _ => def,
            CustomParser = r =>
            {
                string s = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                if (float.TryParse(s, NumberStyles.Float, Inv, out float v) && !float.IsNaN(v) && v >= min && v <= max) return v;
                r.AddError(string.Format(Inv, "option {0} expects a number in [{1}, {2}], got '{3}'", name, min, max, s));
                return def;
            },
        };

    public static Option<ulong?> ULong(string name, string description) =>
        new(name) { Description = description, HelpName = "N", CustomParser = r =>
        {
            string s = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (ulong.TryParse(s, NumberStyles.Integer, Inv, out ulong v)) return v;
            r.AddError($"option {name} expects a non-negative integer, got '{s}'");
            return null;
        } };

    private static int? ParseInt(ArgumentResult r, string name, int min, int max)
    {
        string s = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
        if (int.TryParse(s, NumberStyles.Integer, Inv, out int v) && v >= min && v <= max) return v;
        r.AddError($"option {name} expects an integer{(min > int.MinValue ? $" >= {min}" : "")}{(max < int.MaxValue ? $" <= {max}" : "")}, got '{s}'");
        return null;
    }

    private static string? Token(OptionResult r) => r.Tokens.Count > 0 ? r.Tokens[0].Value : null;

    private static string ValueName(string name) => name.TrimStart('-').Replace('-', '_').ToUpperInvariant();
}

/// <summary>
/// The parsed options of one command, read by long name (see the recipe at the top of this file). An option the
/// command does not declare reads as not given, so shared helpers (LoadOptions, Backends) work for every command.
/// </summary>
internal sealed class CliArgs
{
    private readonly ParseResult _parse;
    private readonly string _command;

    internal CliArgs(ParseResult parse)
    {
        _parse = parse;
        _command = parse.CommandResult.Command.Name;
    }

    private Option? Find(string name) => _parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == name);

    /// <summary>Whether the option was given on the command line (not its default).</summary>
    public bool Given(string name) => Find(name) is { } o && _parse.GetResult(o) is { Implicit: false };

    /// <summary>A flag was given, or a valued option was (kept for the checks that ask "was --x given").</summary>
    public bool Has(string name) => Find(name) switch
    {
        Option<bool> f => _parse.GetValue(f),
        null => false,
        _ => Given(name),
    };

    /// <summary>A text option's value (its default when not given, null when it has none); for a typed option, the
    /// text given, or null.</summary>
    public string? Str(string name) => Find(name) switch
    {
        Option<string> o => _parse.GetValue(o),
        { } o when Given(name) => _parse.GetResult(o)!.Tokens is { Count: > 0 } t ? t[0].Value : null,
        _ => null,
    };

    public string Req(string name) => Str(name) ?? throw new UsageException($"{_command}: option {name} is required");

    public int Int(string name) => Find(name) switch
    {
        Option<int> o => _parse.GetValue(o),
        null => 0,
        _ => throw new InvalidOperationException($"{_command}: {name} is not an integer option"),
    };

    /// <summary>An integer option without a default: null when not given.</summary>
    public int? IntOrNull(string name) => Find(name) is Option<int?> o ? _parse.GetValue(o) : null;

    public float Float(string name) => Find(name) switch
    {
        Option<float> o => _parse.GetValue(o),
        null => 0,
        _ => throw new InvalidOperationException($"{_command}: {name} is not a number option"),
    };

    public ulong? ULong(string name) => Find(name) is Option<ulong?> o ? _parse.GetValue(o) : null;

    /// <summary>An on|off option (checked while parsing).</summary>
    public bool OnOff(string name) => Str(name) == "on";

    /// <summary>A text option holding an integer (bench's --depth and --batch take a list when comparing engines).</summary>
    public int ParseInt(string name, int def, int min, int max)
    {
        var s = Str(name);
        if (s == null) return def;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new UsageException($"{_command}: option {name} expects an integer >= {min} <= {max}, got '{s}'");
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
        Threads = Int("--threads"),
        Memory = Has("--no-mmap") ? WeightMemory.Anonymous : WeightMemory.Mmap,
        CacheType = CacheType(),
        MatrixTransform = transform,
        Repack = Find("--repack") == null || OnOff("--repack"),
    };

    /// <summary>--cache-type f32|f16|bf16|q8_0 (default f16).</summary>
    public KvCacheType CacheType() => Str("--cache-type") is not { } s ? KvCacheType.F16
        : KvCache.Parse(s) ?? throw new UsageException($"{_command}: option --cache-type expects f32, f16, bf16 or q8_0, got '{s}'");
}
