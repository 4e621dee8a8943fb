using System.Text.Json;
using DeepSeekCpu.Formats;

namespace DeepSeekCpu.Weights;

/// <summary>
/// All tensors of a model by their Hugging Face name, whatever file format they came from (GGUF and llama2.c
/// readers rename into HF names through a name map), as views over memory-mapped files. Owns the mappings.
/// </summary>
internal sealed partial class ModelWeights : IDisposable
{
    private readonly Dictionary<string, TensorView> _tensors;
    private readonly Dictionary<string, long> _matrixBytes = new(); // what the graph multiplies by, after MatrixTransform
    private readonly List<IDisposable> _owned;

    /// <summary>Where the weights came from (a folder or file), for messages.</summary>
    public string Source { get; }

    public ModelWeights(string source, Dictionary<string, TensorView> tensors, List<IDisposable> owned)
    {
        Source = source; _tensors = tensors; _owned = owned;
    }

    public IReadOnlyDictionary<string, TensorView> Tensors => _tensors;

    /// <summary>Optional load-time conversion of matrices (e.g. --quant q8_0); null keeps them as stored.</summary>
    public Func<WeightMatrix, WeightMatrix>? MatrixTransform { get; set; }

    /// <summary>Whether matrices get an interleaved copy for the decode kernels where the active path has a body for it (--repack).</summary>
    public bool Repack { get; set; }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorView Get(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new ModelFormatException($"{Source}: tensor {name} is missing");

    public TensorView? TryGet(string name) => _tensors.TryGetValue(name, out var t) ? t : null;

    /// <summary>A 2-D weight [rows, cols] checked against the expected shape; FP8 scales come from "{name}_scale_inv".</summary>
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var stored = RawMatrix(name, rows, cols);
        var m = MatrixTransform?.Invoke(stored) ?? stored;
        // The copy is made while the files, the copies so far and this one fit in 90% of the machine's memory (the
        // mapping's pages that decoding no longer reads are page cache the kernel may reclaim; anonymous weights are not).
        long size = Repack ? Kernels.Repack.Interleave.SizeOf(m) : 0;
        long interleaved = size > 0 && TotalBytes + ResidentBytes + size <= 0.9 * GC.GetGCMemoryInfo().TotalAvailableMemoryBytes
            ? Kernels.Repack.Interleave.Attach(m, Kernels.KernelInfo.Path) : 0;
        lock (_matrixBytes)
        {
            _matrixBytes[name] = m.ByteLength;
            if (!ReferenceEquals(m, stored) && m.Owner != null) { _owned.Add(m.Owner); ResidentBytes += m.ByteLength; } // freed with the model
            if (interleaved > 0) { _owned.Add(m); ResidentBytes += interleaved; InterleavedBytes += interleaved; }   // disposing m frees the copy
        }
        return m;
    }

    /// <summary>
    /// Registers matrices the graph derived from stored tensors (re-laid-out or converted copies, or views of parts of
    /// them) and multiplies by for every token: counted in <see cref="BytesPerToken"/>, its memory freed with the model.
    /// </summary>
    public void AddDerived(string name, long bytes, IDisposable? owner)
    {
        lock (_matrixBytes)
        {
            _matrixBytes[name] = bytes;
            if (owner != null) { _owned.Add(owner); ResidentBytes += bytes; }
        }
    }

    /// <summary>Counts a copy of weights the graph keeps besides the memory map, not read for every token (freed with the model).</summary>
    public void AddResident(long bytes, IDisposable? owner = null)
    {
        lock (_matrixBytes)
        {
            ResidentBytes += bytes;
            if (owner != null) _owned.Add(owner);
        }
    }

    /// <summary>
    /// Bytes of weights held in private memory besides the files' mappings: converted or re-laid-out copies made at
    /// load (--quant, MLA's packed per-head matrices); norms and biases (small float32 vectors) are not counted.
    /// </summary>
    public long ResidentBytes { get; private set; }

    /// <summary>Of <see cref="ResidentBytes"/>: the interleaved copies of matrices for the decode kernels (<see cref="Repack"/>).</summary>
    public long InterleavedBytes { get; private set; }

    /// <summary>
    /// A 2-D weight exactly as stored (no <see cref="MatrixTransform"/>), for tensors that are looked up by row or
    /// converted by the graph itself (embeddings, MLA's kv_b_proj); not counted in <see cref="BytesPerToken"/>.
    /// </summary>
    public WeightMatrix RawMatrix(string name, int rows, int cols)
    {
        var t = Get(name);
        if (t.Rank != 2 || t.Shape[0] != rows || t.Shape[1] != cols)
            throw new ModelFormatException($"{t.File}: tensor {name} has shape {t.ShapeText}, expected [{rows}, {cols}]");
        CheckReadable(t);
        return WeightMatrix.From(t, TryGet(name + "_scale_inv"));
    }

    /// <summary>
    /// Bytes of weights one decoded token reads: every matrix the graph took through <see cref="Matrix"/>, except the
    /// embedding table (one row per token) unless it doubles as the output head, and with MoE experts counted
    /// for the <paramref name="expertsPerToken"/> of <paramref name="experts"/> that a token uses.
    /// </summary>
    public long BytesPerToken(string headName, int experts = 0, int expertsPerToken = 0)
    {
        double total = 0;
        lock (_matrixBytes)
            foreach (var (name, bytes) in _matrixBytes)
            {
                if (name == "model.embed_tokens.weight" && headName != name) continue;
                total += name.Contains(".mlp.experts.") && experts > 0 ? bytes * (double)expertsPerToken / experts : bytes;
            }
        return (long)total;
    }

    /// <summary>A 1-D vector as float32 (norm weights, biases): converted once, it is small.</summary>
    public float[] Vector(string name, int length)
    {
        var t = Get(name);
        if (t.ElementCount != length)
            throw new ModelFormatException($"{t.File}: tensor {name} has shape {t.ShapeText}, expected [{length}]");
        CheckReadable(t);
        var v = new float[length];
        unsafe { Kernels.Dequantize.Row(t.Type, t.Data, v); }
        return v;
    }

    /// <summary>
    /// A tensor of a type the kernels cannot read (GGUF has types this engine does not compute with, such as Q8_1):
    /// one line naming the file and tensor instead of the kernel's NotSupportedException. The scalar dequantization,
    /// which is the kernels' specification, is tried on the first block.
    /// </summary>
    private static unsafe void CheckReadable(TensorView t)
    {
        if (t.ElementCount == 0) return;
        Span<float> block = stackalloc float[t.Type.BlockSize()];   // at most 256
        try { Kernels.Dequantize.Row(t.Type, t.Data, block); }
        catch (NotSupportedException) { throw new ModelFormatException($"{t.File}: tensor {t.Name} has type {t.Type}, which this engine cannot compute with"); }
    }

    /// <summary>Share of the populated memory-mapped files on 2 MiB pages (byte-weighted); null if none was populated.</summary>
    public double? HugePageShare
    {
        get
        {
            var files = _owned.Select(o => o switch
                {
                    MappedFile m => m,
                    GgufFile g => g.Mapped,
                    SafeTensorsFile t => t.Mapped,
                    Llama2cCheckpoint c => c.Mapped,
                    _ => null,
                }).OfType<MappedFile>().Where(f => f.HugePageShare != null).ToList();
            if (files.Count == 0) return null;
            return files.Sum(f => f.HugePageShare!.Value * f.Length) / files.Sum(f => (double)f.Length);
        }
    }

    public long TotalBytes => _tensors.Values.Sum(t => t.ByteLength);

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
    }

    /// <summary>
    /// Opens a Hugging Face folder's safetensors: model.safetensors, or the shards listed by model.safetensors.index.json
    /// ("weight_map": tensor name → shard file).
    /// </summary>
    public static ModelWeights OpenSafetensorsFolder(string dir, WeightMemory memory = WeightMemory.Mmap)
    {
        var files = new List<string>();
        string index = Path.Combine(dir, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                    throw new ModelFormatException($"{index}: field \"weight_map\" is missing");
                foreach (var p in map.EnumerateObject())
                {
                    string f = ShardPath(index, dir, p.Name, p.Value);
                    if (!files.Contains(f)) files.Add(f);
                }
            }
            catch (JsonException e) { throw new ModelFormatException($"{index}: not valid JSON ({e.Message.Split('\n')[0]})"); }
            catch (Exception e) when (JsonFile.IsReadError(e)) { throw new ModelFormatException(JsonFile.ReadErrorText(index, e)); }
        }
        else if (File.Exists(Path.Combine(dir, "model.safetensors"))) files.Add(Path.Combine(dir, "model.safetensors"));
        else files.AddRange(Directory.GetFiles(dir, "*.safetensors").Order());
        if (files.Count == 0) throw new ModelFormatException($"{dir}: no model.safetensors or model.safetensors.index.json found");

        var owned = new List<IDisposable>();
        var tensors = new Dictionary<string, TensorView>();
        try
        {
            foreach (var f in files)
            {
                var st = SafeTensorsFile.Open(f, memory);
                owned.Add(st);
                foreach (var (name, t) in st.Tensors)
                    if (!tensors.TryAdd(name, t)) throw new ModelFormatException($"{f}: tensor {name} also appears in another shard");
            }
        }
        catch { foreach (var o in owned) o.Dispose(); throw; }
        return new ModelWeights(dir, tensors, owned);
    }

    /// <summary>
    /// A shard named by the index: a plain file name inside the model's folder. The index comes from the download like
    /// the weights, so a name such as "../../etc/passwd" or "/proc/self/mem" must not open a file elsewhere (the name
    /// is checked as text; a shard that is a symbolic link, as in the Hugging Face cache, is followed as usual).
    /// </summary>
    private static string ShardPath(string index, string dir, string tensor, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String || value.GetString() is not { Length: > 0 } name)
            throw new ModelFormatException($"{index}: weight_map[\"{tensor}\"] must be a shard file name");
        string folder = Path.GetFullPath(dir);
        string full = Path.GetFullPath(Path.Combine(folder, name));
        if (Path.IsPathRooted(name) || name.Contains('\0') || Path.GetDirectoryName(full) is not { } parent
            || !string.Equals(Path.TrimEndingDirectorySeparator(parent), Path.TrimEndingDirectorySeparator(folder), StringComparison.Ordinal))
            throw new ModelFormatException($"{index}: weight_map[\"{tensor}\"] names a file outside the model's folder; shards must be plain file names beside the index");
        return full;
    }
}
