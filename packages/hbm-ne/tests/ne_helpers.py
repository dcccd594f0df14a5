from __future__ import annotations
import torch



def teacher_data(
    n: int, input_size: int = 4, num_actions: int = 2, *, seed: int = 0, scale: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """Observations and actions sampled from a random teacher MLP (labels are learnable)."""
    from hbm_ne import FeedforwardMLP

    g = torch.Generator().manual_seed(seed)
    teacher = FeedforwardMLP(input_size, (16,), num_actions)
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale / max(p.shape[-1], 1) ** 0.5)
    x = torch.randn(n, input_size, generator=g)
    with torch.no_grad():
        probs = teacher.get_probs(x)
    y = torch.multinomial(probs, 1, generator=g).squeeze(1)
    return x, y, teacher
