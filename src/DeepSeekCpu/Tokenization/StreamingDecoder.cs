using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>Provisional: joins token bytes and emits only complete UTF-8 (replaced by the tokenizer branch).</summary>
public sealed class StreamingDecoder(ITokenizer tokenizer)
{
    private readonly List<byte> _pending = [];

    public string Append(int id)
    {
        _pending.AddRange(tokenizer.TokenBytes(id).ToArray());
        var bytes = _pending.ToArray();
        int complete = CompleteLength(bytes);
        string s = Encoding.UTF8.GetString(bytes, 0, complete);
        _pending.RemoveRange(0, complete);
        return s;
    }

    public string Flush()
    {
        string s = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return s;
    }

    private static int CompleteLength(byte[] b)
    {
        int n = b.Length;
        for (int back = 1; back <= Math.Min(3, n); back++)
        {
            byte c = b[n - back];
            if ((c & 0xC0) == 0x80) continue;
            int need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return need > back ? n - back : n;
        }
        return n;
    }
}
