using DeepSeekCpu.Models;

namespace DeepSeekCpu.Generation;

/// <summary>
/// One of <see cref="ChatEngine"/>'s sequences: a session with its KV cache, the tokens that cache holds, and the
/// request using it. A slot keeps its cache after a request, so a later prompt that starts with the same tokens (a
/// conversation's next turn, a shared system prompt) is fed only from where the two differ, as llama.cpp's server
/// slots do.
/// </summary>
internal sealed class Slot(IModelSession session)
{
    public readonly IModelSession Session = session;
    /// <summary>The tokens whose keys and values the session holds.</summary>
    public readonly List<int> Cached = [];
    /// <summary>The request using the slot; null while it is free.</summary>
    public ChatEngine.Job? Job;
    /// <summary>The admission counter when it last took a request (0: never).</summary>
    public long LastUsed;

    /// <summary>
    /// The free slot a prompt should take and how many of its tokens that slot's cache holds already: the slot whose
    /// cache the prompt extends (shares at least half of it, e.g. a conversation's next turn); otherwise the free slot
    /// used least recently (an empty one first), so one conversation's cache is not thrown away for another while a
    /// slot sits unused. Null when every slot is busy.
    /// </summary>
    public static Slot? Choose(Slot[] slots, int[] prompt, out int reuse)
    {
        Slot? best = null, lru = null;
        reuse = 0;
        foreach (var s in slots)
        {
            if (s.Job != null) continue;
            int n = CommonPrefix(s.Cached, prompt);
            if (n > reuse && 2 * n >= s.Cached.Count) { best = s; reuse = n; }
            if (lru == null || s.LastUsed < lru.LastUsed) lru = s;
        }
        if (best != null || lru == null) return best;
        reuse = CommonPrefix(lru.Cached, prompt);
        return lru;
    }

    /// <summary>Takes the slot for <paramref name="job"/>, keeping the first <paramref name="reuse"/> cached tokens.</summary>
    public void Take(ChatEngine.Job job, int reuse, long admission)
    {
        Session.Truncate(reuse);
        Cached.RemoveRange(reuse, Cached.Count - reuse);
        Job = job;
        LastUsed = admission;
    }

    /// <summary>Frees the slot after a request; its cache list is trimmed to what the session holds (the last sampled
    /// token was never fed).</summary>
    public void Release()
    {
        int fed = Session.Position;
        if (Cached.Count > fed) Cached.RemoveRange(fed, Cached.Count - fed);
        Job = null;
    }

    /// <summary>Forgets the cache, after a failed pass left it in an unknown state.</summary>
    public void Forget()
    {
        Cached.Clear();
        Session.Truncate(0);
    }

    /// <summary>Tokens the cache and the prompt share from the start, leaving at least one prompt token to feed (its
    /// logits are the first prediction).</summary>
    private static int CommonPrefix(List<int> cached, int[] prompt)
    {
        int n = 0;
        while (n < cached.Count && n < prompt.Length - 1 && cached[n] == prompt[n]) n++;
        return n;
    }
}
