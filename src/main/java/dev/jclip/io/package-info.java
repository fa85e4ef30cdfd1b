/**
 * Reading checkpoints and tensors, safely.
 *
 * <p>Entry point: {@link dev.jclip.io.Checkpoint#open}, which accepts every layout users have
 * (OpenAI's TorchScript {@code .pt}, {@code torch.save} zips with or without training wrappers,
 * safetensors, HuggingFace and open_clip folders, sharded or not) and returns {@link
 * dev.jclip.io.Tensor}s under OpenAI's state-dict names ({@link dev.jclip.io.CanonicalNames}).
 * Underneath: {@link dev.jclip.io.ZipArchive} (central directory, ZIP64, stored entries mapped in
 * place), {@link dev.jclip.io.Unpickler} (a restricted unpickler: allowlisted globals only, nothing
 * from the file is ever executed), {@link dev.jclip.io.TorchArchive} (tensors of {@code data.pkl}
 * and TorchScript module trees), {@link dev.jclip.io.SafetensorsReader}. Registered models are
 * fetched by {@link dev.jclip.io.Downloader} from {@link dev.jclip.io.ModelRegistry}.
 *
 * <p>Every malformed input is reported as a {@link dev.jclip.io.CheckpointException} naming the
 * file, the key and the problem.
 */
package dev.jclip.io;
