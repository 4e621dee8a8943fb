namespace DeepSeekCpu.Models.DeepSeek;

public sealed partial class DeepSeekModel
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
                return _mtp ??= new Mtp(this, Weights, Config, _rope, _softmaxScale, RopeInterleaved, _embed, _norm,
                    Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        }
    }
}
