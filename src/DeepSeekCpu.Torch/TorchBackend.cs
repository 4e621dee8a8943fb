using System.Runtime.InteropServices;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekCpu.Torch;

/// <summary>
/// Entry point of the TorchSharp backend: checks that libtorch loads and that the devices exist, then builds a
/// <see cref="TorchModel"/>. Every failure is one line that says what is missing; nothing falls back to another
/// device or backend.
/// </summary>
public static class TorchBackend
{
    private static readonly Lock Gate = new();
    private static bool _loaded;

    /// <summary>
    /// <paramref name="options"/> with the model graph built by this backend on <paramref name="torch"/>'s devices
    /// instead of the managed engine: <c>LocalModel.Load(path, options: LoadOptions.Default.UseTorch(new() { Devices = ["cuda"] }))</c>.
    /// The weights are read by the engine's loaders as usual; libtorch loads when the model is built, and a missing
    /// library or device is one line (<see cref="NotSupportedException"/>, <see cref="ArgumentException"/>).
    /// </summary>
    public static LoadOptions UseTorch(this LoadOptions options, TorchOptions torch) =>
        options with { Graph = (config, weights) => Build(config, weights, torch) };

    /// <summary>Builds the graph over already opened weights (ModelLoader's LoadOptions.Graph hook).</summary>
    internal static ILanguageModel Build(ModelConfig config, ModelWeights weights, TorchOptions options)
    {
        if (options.Devices.Count == 0) throw new ArgumentException("torch backend: no device given");
        foreach (var d in options.Devices)
            if (TorchOptions.CheckDeviceName(d) is { } bad) throw new ArgumentException($"torch backend: {bad}");
        EnsureLoaded();
        foreach (var d in options.Devices) CheckDevice(d);
        if (options.Threads > 0) torch.set_num_threads(options.Threads);
        return new TorchModel(config, weights, options);
    }

    /// <summary>
    /// Loads libtorch through TorchSharp's glue. The glue is loaded by hand first: TorchSharp's own error for a glue that
    /// does not load blames a missing package and then copies the natives elsewhere, while the dynamic loader's message
    /// names the real cause (e.g. a libstdc++ version).
    /// </summary>
    internal static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            if (OperatingSystem.IsLinux())
            {
                string? glue = GluePath();
                if (glue == null)
                    throw new NotSupportedException($"torch backend: libLibTorchSharp.so is not beside the program ({AppContext.BaseDirectory}); build or publish with the DeepSeekCpu.Torch project (package TorchSharp {typeof(torch).Assembly.GetName().Version})");
                try { NativeLibrary.Load(glue); }
                catch (DllNotFoundException e)
                {
                    throw new NotSupportedException($"torch backend: libtorch does not load: {e.Message.Split('\n')[0].Trim()}");
                }
            }
            try { torch.InitializeDeviceType(DeviceType.CPU); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new NotSupportedException($"torch backend: libtorch does not load: {e.Message.Split('\n')[0].Trim()}");
            }
            _loaded = true;
        }
    }

    private static string? GluePath()
    {
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") })
        {
            string p = Path.Combine(dir, "libLibTorchSharp.so");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>A CUDA device needs a CUDA build of libtorch and a visible GPU with that index.</summary>
    private static void CheckDevice(string d)
    {
        if (d == "cpu") return;
        bool cudaLibrary = torch.cuda.is_available() || GluePath() is { } g && File.Exists(Path.Combine(Path.GetDirectoryName(g)!, "libtorch_cuda.so"));
        if (!cudaLibrary)
            throw new NotSupportedException($"torch backend: --device {d} needs the CUDA build of libtorch, but this build has the CPU one (package libtorch-cpu-linux-x64; build with -p:TorchRuntime=cuda for TorchSharp-cuda-linux)");
        if (!torch.cuda.is_available())
            throw new NotSupportedException($"torch backend: --device {d}: libtorch has CUDA but sees no CUDA device (check the driver and CUDA_VISIBLE_DEVICES)");
        int index = d == "cuda" ? 0 : int.Parse(d.AsSpan(5));
        int count = torch.cuda.device_count();
        if (index >= count) throw new NotSupportedException($"torch backend: --device {d} does not exist: {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})");
    }
}
