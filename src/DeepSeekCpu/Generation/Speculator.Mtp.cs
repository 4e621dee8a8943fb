using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Self-speculation with DeepSeek-V3/R1's multi-token-prediction module (<see cref="Mtp"/>): the model's own MTP
/// layer guesses from the main model's last hidden state instead of a separate draft model, and the main model
/// verifies in one batched pass exactly as for a draft model (<see cref="DraftAndVerify"/>), so the output is the
/// output of plain decoding. V3 trained one MTP module, which guesses one token ahead; k > 1 chains it on its own
/// output (as vLLM does), with lower acceptance for the later guesses.
/// </summary>
internal sealed partial class Speculator
{
    private readonly Mtp? _mtp;

    private Speculator(Mtp mtp, int k, int vocab)
    {
        if (k < 1 || k > 32) throw new ArgumentOutOfRangeException(nameof(k), $"MTP tokens per round must be 1..32 (got {k})");
        _mtp = mtp;
        K = k;
        _vocab = vocab;
        _draftLogits = [];
        _guesses = new int[k];
    }

    /// <summary>
    /// A speculator that drafts with <paramref name="model"/>'s MTP layer. Throws <see cref="ArgumentException"/>
    /// (one line) when the model has none.
    /// </summary>
    public static Speculator WithMtp(ILanguageModel model, int k = 1) =>
        model is DeepSeekModel { Mtp: { } mtp } ? new Speculator(mtp, k, model.Config.VocabSize)
            : throw new ArgumentException($"the model has no multi-token-prediction layer ({model.Config.ModelType}: num_nextn_predict_layers = {model.Config.NumNextnPredictLayers})");
}
