"""The planted bugs of the mutation check (``run.py``): bugs a maintainer could plausibly write.

Each mutant replaces text in one file of ``ipt_compose/`` (every ``old`` must occur exactly once in
that file) and names the tests to run, fastest and most pointed first (``pytest -x`` stops at the
first failure). The first five are the survivors of issue 14's probe of 0.1.0, re-planted in the
rebuilt code; the rest cover each public concept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to ipt_compose/
    edits: tuple[tuple[str, str], ...]  # (old, new): old occurs exactly once in the file
    tests: tuple[str, ...]
    why: str


LOSS = (
    "tests/test_loss_values.py",
    "tests/test_loss.py",
    "tests/test_variants.py",
    "tests/test_model_api.py",
)
MIX = ("tests/test_mix_values.py", "tests/test_mix.py", "tests/test_interop.py", "tests/test_fuzz.py")
CHECKS = (
    "tests/test_checks.py",
    "tests/test_host_sync.py",
    "tests/test_bad_input.py",
    "tests/test_target.py",
    "tests/test_model_api.py",
)
SPACE = ("tests/test_space.py", "tests/test_target.py", "tests/test_compose.py", "tests/test_model.py")
TARGET = (
    "tests/test_target.py",
    "tests/test_mix_values.py",
    "tests/test_mix.py",
    "tests/test_compose.py",
    "tests/test_loss.py",
)
PRETEXT = ("tests/test_pretexts.py", "tests/test_variants.py", "tests/test_compose.py")
ROWS = ("tests/test_compose.py", "tests/test_model_values.py", "tests/test_model.py")
MODEL = (
    "tests/test_model_values.py",
    "tests/test_model.py",
    "tests/test_model_api.py",
    "tests/test_variants.py",
)
FUZZ = ("tests/test_fuzz.py",)


def _m(id: str, file: str, tests: tuple[str, ...], why: str, *edits: tuple[str, str]) -> Mutant:
    return Mutant(id, file, tuple(edits), tuple(dict.fromkeys(tests)), why)  # each file once, in order


MUTANTS: list[Mutant] = [
    # ------------------------------------------------------------ the five survivors of issue 14
    _m(
        "cutmix_weight_from_unclipped_box", "mix.py", MIX,
        "CutMix (one box, the Compose/mix() path) weighs labels by the unclipped box",
        (
            'return {"box": torch.tensor(bounds)}',
            'return {"box": torch.tensor(bounds), "lam": torch.tensor(1.0 - 4 * w * h / (width * height))}',
        ),
        (
            "            lam: Tensor | float = 1.0 - (right - left) * (bottom - top) / (height * width)",
            '            lam: Tensor | float = float(params["lam"]) if "lam" in params else '
            "1.0 - (right - left) * (bottom - top) / (height * width)",
        ),
    ),
    _m(
        "teacher_not_detached", "loss.py", LOSS,
        "self_distillation_loss lets gradients flow into the teacher",
        ("teacher = _upcast_under_autocast(teacher.detach())", "teacher = _upcast_under_autocast(teacher)"),
    ),
    _m(
        "distillation_sum_returns_mean", "loss.py", LOSS,
        'self_distillation_loss(reduction="sum") returns the mean',
        (
            "ce + temperature**2 * kl, reduction)",
            'ce + temperature**2 * kl, "mean" if reduction == "sum" else reduction)',
        ),
    ),
    _m(
        "cutmix_half_side_quarter", "mix.py", MIX,
        "CutMix half-side 0.25·sqrt(1-λ) instead of 0.5 (one box per batch)",
        (
            "            side = 0.5 * math.sqrt(1.0 - draw_beta_on_host(self.alpha, generator))",
            "            side = 0.25 * math.sqrt(1.0 - draw_beta_on_host(self.alpha, generator))",
        ),
    ),
    _m(
        "checks_accelerator_branch_removed", "_checks.py", CHECKS,
        "value checks off the CPU never queue torch._assert_async",
        (
            "if not ok.is_cpu or torch.compiler.is_compiling():\n        _assert_async(ok, message)\n"
            "        return",
            "if not ok.is_cpu or torch.compiler.is_compiling():\n        return",
        ),
    ),
    # ------------------------------------------------------------ value checks
    _m(
        "check_range_accelerator_verdict_always_true", "_checks.py", CHECKS,
        "off the CPU, check_range compares the clamped values with themselves",
        ("        ok = inside.eq(value).all()", "        ok = inside.eq(inside).all()"),
    ),
    _m(
        "checks_fallback_inverted_device_test", "_checks.py", CHECKS,
        "without torch._assert_async, CPU checks never raise",
        (
            "        if ok.is_cpu and not torch.compiler.is_compiling() and not bool(ok):",
            "        if not ok.is_cpu and not torch.compiler.is_compiling() and not bool(ok):",
        ),
    ),
    _m(
        "probabilities_negative_accepted", "_checks.py", CHECKS,
        "check_probabilities forgets the non-negativity test",
        (
            "    ok = probs.ge(0).all() & (probs.sum(dim=-1) - 1).abs().le(tolerance).all()",
            "    ok = (probs.sum(dim=-1) - 1).abs().le(tolerance).all()",
        ),
    ),
    # ------------------------------------------------------------ LabelSpace
    _m(
        "space_strides_column_major", "space.py", SPACE,
        "encode/decode stride order: class fastest instead of class-major",
        (
            "        for i in range(len(self._sizes) - 2, -1, -1):\n"
            "            strides[i] = strides[i + 1] * self._sizes[i + 1]",
            "        for i in range(1, len(self._sizes)):\n"
            "            strides[i] = strides[i - 1] * self._sizes[i - 1]",
        ),
    ),
    _m(
        "space_decode_reversed_strides", "space.py", SPACE,
        "decode divides by the strides in reverse order",
        (
            'return torch.div(joint.long().unsqueeze(-1), strides, rounding_mode="floor") % sizes',
            'return torch.div(joint.long().unsqueeze(-1), strides.flip(0), rounding_mode="floor") % sizes',
        ),
    ),
    _m(
        "lift_index_arguments_swapped", "space.py", (*SPACE, "tests/test_loss.py"),
        "lift computes j + s·K instead of j·K + s",
        (
            "return torch.add(states if index.ndim == 1 else states.unsqueeze(1), index, alpha=num_states)",
            "return torch.add(index, states if index.ndim == 1 else states.unsqueeze(1), alpha=num_states)",
        ),
    ),
    _m(
        "target_marginal_keeps_wrong_factor", "space.py", SPACE,
        "JointTarget.marginal keeps the factors it should drop",
        ("        if keep:\n            digit", "        if not keep:\n            digit"),
    ),
    _m(
        "space_marginal_keeps_mirrored_factor", "space.py", SPACE,
        "LabelSpace.marginal keeps the factor at the mirrored position",
        (
            "        kept = self._kept_positions(keep)\n        grid = self.unflatten(values)",
            "        kept = {len(self._sizes) - 1 - i for i in self._kept_positions(keep)}\n"
            "        grid = self.unflatten(values)",
        ),
    ),
    _m(
        "space_marginal_logits_max", "space.py", (*SPACE, "tests/test_model_api.py"),
        "marginal logits take the max instead of logsumexp",
        (
            "            grid = torch.logsumexp(grid, dim=dropped) if logits else grid.sum(dim=dropped)",
            "            grid = grid.amax(dim=dropped) if logits else grid.sum(dim=dropped)",
        ),
    ),
    _m(
        "space_offset_wrong_strides", "space.py", SPACE + MODEL,
        "select/offset use the strides of the wrong factors",
        ("        strides = self.strides[1:]\n", "        strides = self.strides[:-1]\n"),
    ),
    # ------------------------------------------------------------ JointTarget
    _m(
        "mix_lambda_on_partner_hard", "target.py", TARGET,
        "mixing hard labels gives λ to the partner",
        (
            "            weight = torch.cat([own, 1 - own], dim=1).expand(index.shape[0], 2)",
            "            weight = torch.cat([1 - own, own], dim=1).expand(index.shape[0], 2)",
        ),
    ),
    _m(
        "mix_lambda_on_partner_dense", "target.py", TARGET,
        "mixing soft (dense) labels gives λ to the partner",
        ("    return own * mine + (1 - own) * theirs", "    return (1 - own) * mine + own * theirs"),
    ),
    _m(
        "mix_lambda_on_partner_mixture", "target.py", TARGET,
        "mixing mixture targets gives λ to the partner",
        (
            "weight = torch.cat([own * self._weight, (1 - own) * _partner(self._weight, pairing)], dim=1)",
            "weight = torch.cat([(1 - own) * self._weight, own * _partner(self._weight, pairing)], dim=1)",
        ),
    ),
    _m(
        "mix_partner_rolled_the_other_way", "target.py", TARGET,
        "an int pairing rolls labels by -shift while the images roll by +shift",
        (
            "        return values.roll(pairing, dims=0) if values.stride(0) else values",
            "        return values.roll(-pairing, dims=0) if values.stride(0) else values",
        ),
    ),
    _m(
        "dense_scatter_overwrites", "target.py", TARGET,
        "dense() overwrites repeated joint indices instead of adding their weights",
        (
            "        return out.scatter_add_(1, self.index, weight)",
            "        return out.scatter_(1, self.index, weight)",
        ),
    ),
    _m(
        "target_repeat_tiles_rows", "target.py", TARGET + ROWS,
        "JointTarget.repeat_interleave tiles the indices instead of repeating each row",
        (
            "            index = index.repeat_interleave(repeats, dim=0)",
            "            index = index.repeat(repeats, *([1] * (index.ndim - 1)))",
        ),
    ),
    # ------------------------------------------------------------ mixers
    _m(
        "cutmix_per_sample_weight_from_unclipped_box", "mix.py", MIX,
        "CutMix(per_sample=True) boxes are not clipped, so λ counts pixels outside the image",
        (
            "                (centre_x - half_w).clamp(min=0),\n"
            "                (centre_y - half_h).clamp(min=0),\n"
            "                (centre_x + half_w).clamp(max=width),\n"
            "                (centre_y + half_h).clamp(max=height),",
            "                centre_x - half_w,\n                centre_y - half_h,\n"
            "                centre_x + half_w,\n                centre_y + half_h,",
        ),
    ),
    _m(
        "cutmix_half_side_quarter_per_sample", "mix.py", MIX,
        "CutMix half-side 0.25·sqrt(1-λ) instead of 0.5 (per-row boxes)",
        (
            "        half = 0.5 * torch.sqrt(1.0 - lam.double())",
            "        half = 0.25 * torch.sqrt(1.0 - lam.double())",
        ),
    ),
    _m(
        "cutmix_height_width_swapped", "mix.py", MIX,
        "the box's half-width follows the image height and vice versa",
        (
            "            w, h = math.floor(side * width), math.floor(side * height)",
            "            w, h = math.floor(side * height), math.floor(side * width)",
        ),
    ),
    _m(
        "cutmix_pastes_from_next_row", "mix.py", MIX,
        "CutMix pastes the box of row i+1 while the label says row i-1",
        (
            "images[..., top:bottom, left:right].roll(1, 0)",
            "images[..., top:bottom, left:right].roll(-1, 0)",
        ),
    ),
    _m(
        "cutmix_mask_inclusive", "mix.py", MIX,
        "the per-row box mask includes its end row",
        (
            "        inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)",
            "        inside = (rows >= y1) & (rows <= y2) & (cols >= x1) & (cols < x2)",
        ),
    ),
    _m(
        "mixup_image_lambda_on_partner", "mix.py", MIX,
        "MixUp gives the image weight λ to the partner image",
        (
            "        mixed = torch.lerp(images.roll(1, 0), images, weight)",
            "        mixed = torch.lerp(images, images.roll(1, 0), weight)",
        ),
    ),
    _m(
        "beta_alpha_ignored_on_host", "_random.py", MIX,
        "one-λ-per-batch draws ignore alpha (always Beta(1, 1))",
        ("    concentration = torch.full((2,), float(alpha))", "    concentration = torch.full((2,), 1.0)"),
    ),
    _m(
        "beta_alpha_ignored_per_sample", "_random.py", MIX,
        "per-row λ draws ignore alpha (always Beta(1, 1))",
        (
            "concentration = torch.full((2, *size), float(alpha), device=draw_device, dtype=torch.float32)",
            "concentration = torch.full((2, *size), 1.0, device=draw_device, dtype=torch.float32)",
        ),
    ),
    _m(
        "mixup_per_sample_draws_one_lambda", "mix.py", MIX,
        "MixUp(per_sample=True) draws one λ for the whole batch",
        ("shape = (images.shape[0],) if self.per_sample else ()", "shape = ()"),
    ),
    _m(
        "cutmix_per_sample_draws_one_box", "mix.py", MIX,
        "CutMix(per_sample=True) draws one box for the whole batch",
        ("count = images.shape[0] if self.per_sample else 1", "count = 1"),
    ),
    _m(
        "torchvision_lambda_of_the_partner", "mix.py", MIX,
        "the torchvision adapter weighs each row's own label by the partner's share",
        (
            "return mixed, target.mix(partner, own.clamp(0, 1), validate=False)",
            "return mixed, target.mix(partner, 1 - own.clamp(0, 1), validate=False)",
        ),
    ),
    _m(
        "torchvision_partner_from_columns", "mix.py", MIX,
        "the torchvision adapter reads each row's partner from the columns of the mixing matrix",
        ("        partner = others.argmax(dim=1)", "        partner = others.argmax(dim=0)"),
    ),
    _m(
        "kornia_lambda_convention_swapped", "mix.py", MIX,
        "from_kornia reads λ in the opposite convention",
        (
            '    keep = 1 - lam if lambda_weights == "paired" else lam',
            '    keep = lam if lambda_weights == "paired" else 1 - lam',
        ),
    ),
    _m(
        "kornia_rounds_wrong_order", "mix.py", MIX,
        "from_kornia composes CutMix rounds in the wrong order",
        ("    survive = keep.flip(0).cumprod(0).flip(0)", "    survive = keep.cumprod(0)"),
    ),
    # ------------------------------------------------------------ losses
    _m(
        "cross_entropy_smoothing_over_classes", "loss.py", LOSS,
        "joint_cross_entropy smooths over the N classes instead of the N·K joint labels",
        (
            "        loss = (1 - label_smoothing) * loss - label_smoothing * log_probs.mean(dim=1)",
            "        loss = (1 - label_smoothing) * loss - label_smoothing * torch.log_softmax("
            "log_probs.view(log_probs.shape[0], -1, target.num_states).logsumexp(2), dim=1).mean(dim=1)",
        ),
    ),
    _m(
        "cross_entropy_sum_returns_mean", "loss.py", LOSS,
        'joint_cross_entropy(reduction="sum") returns the mean (mixture targets)',
        (
            "return _reduce(loss, reduction)",
            'return _reduce(loss, "mean" if reduction == "sum" else reduction)',
        ),
    ),
    _m(
        "cross_entropy_hard_path_ignores_reduction", "loss.py", LOSS,
        "hard joint labels always get the mean",
        (
            "return F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction=reduction)",
            "return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)",
        ),
    ),
    _m(
        "cross_entropy_hard_path_ignores_smoothing", "loss.py", LOSS,
        "hard joint labels are never smoothed",
        (
            "return F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction=reduction)",
            "return F.cross_entropy(logits, labels, reduction=reduction)",
        ),
    ),
    _m(
        "cross_entropy_dense_path_averages", "loss.py", LOSS,
        "dense targets average the weighted log-probabilities instead of summing them",
        ("loss = -(weight * log_probs).sum(dim=1)", "loss = -(weight * log_probs).mean(dim=1)"),
    ),
    _m(
        "distillation_temperature_not_squared", "loss.py", LOSS,
        "the distillation term is scaled by T instead of T²",
        ("ce + temperature**2 * kl, reduction)", "ce + temperature * kl, reduction)"),
    ),
    _m(
        "distillation_kl_reversed", "loss.py", LOSS,
        "KL(student ‖ teacher) instead of KL(teacher ‖ student)",
        (
            '    kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=1)',
            '    kl = F.kl_div(log_teacher, log_student, reduction="none", log_target=True).sum(dim=1)',
        ),
    ),
    # ------------------------------------------------------------ pretexts
    _m(
        "channel_drop_off_by_one", "pretext/feature.py", PRETEXT,
        "ChannelDrop state s drops group s-1 (and with identity, group s)",
        (
            "            dropped = torch.arange(self.num_states, device=device) - int(self.identity)",
            "            dropped = torch.arange(self.num_states, device=device) - int(not self.identity)",
        ),
    ),
    _m(
        "channel_drop_contiguous_is_interleaved", "pretext/feature.py", PRETEXT,
        "ChannelDrop's default contiguous layout builds interleaved groups",
        ('if self.groups == "interleaved":', 'if self.groups in ("interleaved", "contiguous"):'),
    ),
    _m(
        "channel_groups_wrong_split", "pretext/base.py", PRETEXT,
        "near-equal groups put the extra channels in the wrong groups",
        ("    boundary = extra * (size + 1)", "    boundary = extra * size"),
    ),
    _m(
        "channel_drop_rescale_inverted", "pretext/feature.py", PRETEXT,
        "rescale multiplies the kept channels by kept/C instead of C/kept",
        (
            "            scale = scale * (num_channels / kept).to(scale.dtype)",
            "            scale = scale * (kept / num_channels).to(scale.dtype)",
        ),
    ),
    _m(
        "channel_drop_random_ignores_seed", "pretext/feature.py", PRETEXT,
        'the "random" layout ignores its seed',
        (
            "            gen = torch.Generator().manual_seed(self.seed)",
            "            gen = torch.Generator().manual_seed(0)",
        ),
    ),
    _m(
        "sample_states_never_draws_the_last", "pretext/base.py", PRETEXT,
        "sample_states draws from [0, K-1): the last state never comes up",
        (
            "return draw_integers(self.num_states, batch_size, device=device, generator=generator)",
            "return draw_integers(self.num_states - 1, batch_size, device=device, generator=generator)",
        ),
    ),
    _m(
        "rotation_clockwise", "pretext/input.py", PRETEXT,
        "Rotation turns clockwise",
        (
            "    return torch.stack([torch.rot90(grid, k, (0, 1)).reshape(-1) for k in range(4)])",
            "    return torch.stack([torch.rot90(grid, -k, (0, 1)).reshape(-1) for k in range(4)])",
        ),
    ),
    _m(
        "cutout_cells_column_major", "pretext/base.py", PRETEXT,
        "Cutout/RegionDrop number the grid cells column-major",
        ("    return rows.unsqueeze(1) * grid + cols", "    return rows.unsqueeze(1) + cols * grid"),
    ),
    _m(
        "cutout_identity_state_erases", "pretext/base.py", PRETEXT,
        "with identity=True, state s erases cell s (state 0 erases cell 0)",
        (
            "    identity = int(pretext.identity_state is not None)",
            "    identity = 0",
        ),
    ),
    _m(
        "cutout_fill_ignored", "pretext/input.py", PRETEXT,
        "Cutout fills with 0 whatever fill says",
        (
            "        return _erase_cells(self, x, states, self.grid, self.fill)",
            "        return _erase_cells(self, x, states, self.grid, 0.0)",
        ),
    ),
    # ------------------------------------------------------------ Compose and the rows of mode="all"
    _m(
        "all_mode_rows_in_list_order", "_rows.py", ROWS,
        'mode="all" enumerates states in list order instead of input pretexts first',
        (
            'ordered = [p for p in pretexts if p.site == "input"] + '
            '[p for p in pretexts if p.site == "feature"]',
            "ordered = list(pretexts)",
        ),
    ),
    _m(
        "all_mode_inputs_tiled", "_rows.py", ROWS,
        'mode="all" tiles the batch instead of repeating each image',
        (
            "images.repeat_interleave(e_in, dim=0)",
            "images.repeat(e_in, *([1] * (images.ndim - 1)))",
        ),
    ),
    _m(
        "feature_factor_inserted_innermost", "_rows.py", ROWS + MODEL,
        "a feature site inserts its factor innermost instead of at its place in list order",
        (
            "    grouped = features.reshape(rows_in * before, 1, after, *rest)\n"
            "    return grouped.expand(-1, sizes[index], -1, *rest).reshape(-1, *rest)",
            "    grouped = features.reshape(rows_in * before * after, 1, *rest)\n"
            "    return grouped.expand(-1, sizes[index], *rest).reshape(-1, *rest)",
        ),
    ),
    _m(
        "output_rows_column_major", "_rows.py", ROWS + MODEL,
        "a site maps its rows to output rows with column-major strides over the feature factors",
        (
            "full_strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]",
            "full_strides = [math.prod(sizes[:i]) for i in range(len(sizes))]",
        ),
    ),
    _m(
        "compose_states_columns_reversed", "compose.py", ROWS,
        "Compose stacks the states columns in reverse list order",
        ("                columns.append(states)", "                columns.insert(0, states)"),
    ),
    _m(
        "vouched_states_accepted_after_edit", "compose.py", MODEL,
        "states edited in place after Compose drew them are still trusted",
        (
            "    if entry is None or entry[0]() is not states or entry[1] != states._version:",
            "    if entry is None or entry[0]() is not states:",
        ),
    ),
    # ------------------------------------------------------------ JointModel: head, sites, predict
    _m(
        "head_blocks_tiled", "_sites.py", MODEL,
        "the widened head tiles the classifier (repeat) instead of copying it per class (repeat_interleave)",
        (
            '        head.weight.copy_(repeat(linear.weight, f"c d -> {space.pattern} d", **states))',
            "        head.weight.copy_(linear.weight.repeat(space.size // space.num_classes, 1))",
        ),
        (
            '            head.bias.copy_(repeat(linear.bias, f"c -> {space.pattern}", **states))',
            "            head.bias.copy_(linear.bias.repeat(space.size // space.num_classes))",
        ),
    ),
    _m(
        "site_expanded_states_wrong_rows", "_sites.py", MODEL + ROWS,
        'in mode="all" a site reads the states of the first rows, not of the rows it feeds',
        (
            "                states = call.states[rows, column]",
            "                states = call.states[: features.shape[0], column]",
        ),
    ),
    _m(
        "site_reads_feature_index_not_column", "_sites.py", MODEL + ROWS,
        "a site reads the states column numbered like the feature pretexts, not its own column",
        (
            "states = call.states.select(1, column) if call.columns is None else call.columns[column]",
            "states = call.states.select(1, index) if call.columns is None else call.columns[index]",
        ),
    ),
    _m(
        "student_sees_dropped_features", "_sites.py", MODEL,
        "the distillation student gets the features after ChannelDrop",
        (
            "            features = self.site.apply(features)\n",
            "            features = self.site.apply(features)\n"
            "            call.head_input = features if call.keep_head_input else None\n",
        ),
    ),
    _m(
        "predict_mean_over_wrong_copies", "_inference.py", MODEL,
        "predict averages rows b, b+B, … instead of each sample's consecutive copies",
        (
            '    return reduce(scores, "(b e) c -> b c", "mean", e=copies)',
            '    return reduce(scores, "(e b) c -> b c", "mean", e=copies)',
        ),
    ),
    _m(
        "predict_marginal_sums_logits", "_inference.py", MODEL,
        'predict(aggregate="marginal") sums the logits instead of their logsumexp',
        (
            'return space.marginal(logits, ["class"], logits=True)',
            'return space.marginal(logits, ["class"])',
        ),
    ),
    _m(
        "eval_forward_is_not_predict", "model.py", MODEL,
        "model(x) in eval mode returns the single-state scores, not predict's default aggregate",
        ("            return self.predict(x)\n", '            return self.predict(x, aggregate="none")\n'),
    ),
    _m(
        "aggregate_blocks_class_major", "_inference.py", MODEL,
        "the one-matmul aggregate lays its kept blocks out class-major",
        (
            '    out_weight = rearrange(grid, f"c {kept} d -> ({kept} c) d")',
            '    out_weight = rearrange(grid, f"c {kept} d -> (c {kept}) d")',
        ),
        (
            '    out_bias = None if bias_grid is None else rearrange(bias_grid, f"c {kept} -> ({kept} c)")',
            '    out_bias = None if bias_grid is None else rearrange(bias_grid, f"c {kept} -> (c {kept})")',
        ),
    ),
    _m(
        "aggregate_ignores_channel_scale", "_inference.py", MODEL,
        "the one-matmul aggregate averages the blocks without their channel masks",
        ("        grid = (grid * scale.view(shape)).mean(dim=axis)", "        grid = grid.mean(dim=axis)"),
    ),
    _m(
        "aggregate_bias_summed", "_inference.py", MODEL,
        "the aggregate (predict, to_plain) sums the state blocks' biases instead of averaging",
        (
            "        bias_grid = None if bias_grid is None else bias_grid.mean(dim=axis)",
            "        bias_grid = None if bias_grid is None else bias_grid.sum(dim=axis)",
        ),
    ),
    _m(
        "to_plain_bias_not_copied", "model.py", MODEL,
        "to_plain keeps the new Linear's random bias",
        (
            "            if bias is not None:\n                linear.bias.copy_(bias)",
            "            if bias is None:\n                linear.bias.copy_(bias)",
        ),
    ),
    _m(
        "class_logits_not_normalised", "_inference.py", MODEL,
        "class_logits is the logsumexp of raw logits, not of log-probabilities",
        (
            '    return space.marginal(torch.log_softmax(logits, dim=-1), ["class"], logits=True)',
            '    return space.marginal(logits, ["class"], logits=True)',
        ),
    ),
    _m(
        "predict_skips_identity_state", "model.py", MODEL,
        "predict's average over a feature pretext skips its identity state",
        (
            '    if aggregate == "all" or (aggregate == "features" and p.site == "feature"):\n'
            "        return tuple(range(p.num_states))",
            '    if aggregate == "all" or (aggregate == "features" and p.site == "feature"):\n'
            "        return tuple(range(int(p.identity_state is not None), p.num_states))",
        ),
    ),
    _m(
        "predict_all_reads_first_input_block", "model.py", MODEL,
        'predict(aggregate="all") on the one-matmul path reads the first input row\'s blocks for every row',
        (
            "            return per_block.diagonal(dim1=1, dim2=2).mean(dim=-1)",
            "            return per_block[:, 0].mean(dim=1)",
        ),
    ),
    _m(
        "teacher_reads_wrong_rows_in_all_mode", "model.py", MODEL,
        'in mode="all" the teacher reads the input states of the first rows',
        (
            "            teacher = self._teacher(features, call.states[::repeats])",
            "            teacher = self._teacher(features, call.states[: features.shape[0]])",
        ),
    ),
    _m(
        "student_tiled_in_all_mode", "model.py", MODEL,
        'in mode="all" the student rows are tiled instead of repeated per input row',
        (
            "            plain = plain.repeat_interleave(repeats, dim=0)",
            "            plain = plain.repeat(repeats, 1)",
        ),
    ),
    _m(
        "teacher_tiled_in_all_mode", "model.py", MODEL,
        'in mode="all" the teacher rows are tiled instead of repeated per input row',
        (
            "            teacher = teacher.repeat_interleave(repeats, dim=0)",
            "            teacher = teacher.repeat(repeats, 1)",
        ),
    ),
    _m(
        "teacher_built_with_grad", "model.py", MODEL,
        "the model builds the teacher with autograd on (it is no longer detached)",
        (
            "        with torch.no_grad():\n            teacher = self._teacher(",
            "        if True:\n            teacher = self._teacher(",
        ),
    ),
    _m(
        "model_states_unchecked", "model.py", MODEL,
        "JointModel no longer range-checks states it did not get from Compose",
        (
            '            check_range("states", states, self._bounds_on(x.device), "per pretext column")',
            "            pass",
        ),
    ),
]
