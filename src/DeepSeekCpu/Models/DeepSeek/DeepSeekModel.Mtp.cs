namespace DeepSeekCpu.Models.DeepSeek;

internal sealed partial class DeepSeekModel
{
    private readonly Lock _mtpLock = new();
    private volatile Mtp? _mtp;

    /// <summary>
    /// The first multi-token-prediction module (layer num_hidden_layers), loaded on first use; null when the weights
    /// have none. Loading it costs its layer's prepared weights; from then on every forward pass keeps its rows' last
    /// hidden states for it (one float row per position and sequence). Throws <see cref="ModelFormatException"/>
    /// (one line) when its tensors are missing or misshapen.
    /// </summary>
    public Mtp? Mtp
    {
        get
        {
            if (MtpLayers == 0) return null;
            lock (_mtpLock)
            {
                if (_mtp != null) return _mtp;
                string head = Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
                long before = AllBytesPerToken;
                var mtp = new Mtp(this, Weights, Config, _rope, _softmaxScale, RopeInterleaved, _embed, _norm, head);
                _mtpOwnBytes = AllBytesPerToken - before;
                // a module without its own head reads the main one, already counted
                MtpBytesPerToken = _mtpOwnBytes + (mtp.HasOwnHead ? 0 : Weights.Get(head).ByteLength);
                return _mtp = mtp;
            }
        }
    }

    /// <summary>Weight bytes one MTP step reads (eh_proj, its block with its routed experts' share, the head); 0 until loaded.</summary>
    public long MtpBytesPerToken { get; private set; }

    private long _mtpOwnBytes;   // matrices the module added to Weights' count (not read by the main model's steps)

    private long AllBytesPerToken =>
        Weights.BytesPerToken(Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", Config.NRoutedExperts, Config.NumExpertsPerTok);
}
