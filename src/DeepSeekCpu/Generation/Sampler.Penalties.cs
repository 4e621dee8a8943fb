namespace DeepSeekCpu.Generation;

/// <summary>
/// OpenAI's additive penalties and biases (API reference, chat/create; the formula of OpenAI's "frequency and presence
/// penalties" guide): logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty, counted over the
/// repetition window as llama.cpp's penalty_last_n does; logit_bias adds its value to each listed token's logit.
/// </summary>
internal sealed partial class Sampler
{
    private int[] _counts = [];

    private void ApplyOpenAiPenalties(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (_o.PresencePenalty != 0 || _o.FrequencyPenalty != 0)
        {
            if (_counts.Length < logits.Length) _counts = new int[logits.Length];
            var window = history[Math.Max(0, history.Length - _o.RepetitionWindow)..];
            foreach (int id in window) if ((uint)id < (uint)logits.Length) _counts[id]++;
            foreach (int id in window)
            {
                if ((uint)id >= (uint)logits.Length || _counts[id] == 0) continue;
                logits[id] -= _counts[id] * _o.FrequencyPenalty + _o.PresencePenalty;
                _counts[id] = 0;   // once per distinct token; the counts are clear again after the loop
            }
        }
        if (_o.LogitBias != null)
            foreach (var (id, bias) in _o.LogitBias)
                if ((uint)id < (uint)logits.Length) logits[id] += bias;
    }
}
