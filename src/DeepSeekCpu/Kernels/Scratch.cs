using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Per-thread scratch memory for kernels: pinned arrays (never moved by the GC) that grow to the largest size asked
/// for and are then reused, so a kernel call allocates nothing in the steady state.
/// </summary>
internal static unsafe class Scratch
{
    /// <summary>A pointer to at least <paramref name="bytes"/> bytes of <paramref name="slot"/>, 64-byte aligned.</summary>
    public static byte* Get(ref byte[]? slot, long bytes)
    {
        if (slot == null || slot.Length < bytes + 64)
            slot = GC.AllocateUninitializedArray<byte>(checked((int)(bytes + 64)), pinned: true);
        byte* p = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(slot));
        return (byte*)(((nint)p + 63) & ~(nint)63);
    }
}
