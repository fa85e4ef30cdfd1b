package dev.jclip.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/** Builds small PyTorch-style zips (stored entries under one top folder) for tests. */
final class TorchZipWriter {
  private final String folder;
  private final Map<String, byte[]> entries = new LinkedHashMap<>();

  TorchZipWriter(String folder) {
    this.folder = folder;
  }

  TorchZipWriter put(String name, byte[] data) {
    entries.put(folder + "/" + name, data);
    return this;
  }

  byte[] bytes() throws IOException {
    ByteArrayOutputStream bo = new ByteArrayOutputStream();
    try (ZipOutputStream z = new ZipOutputStream(bo)) {
      for (Map.Entry<String, byte[]> e : entries.entrySet()) {
        ZipEntry ze = new ZipEntry(e.getKey());
        ze.setMethod(ZipEntry.STORED);
        ze.setSize(e.getValue().length);
        CRC32 crc = new CRC32();
        crc.update(e.getValue());
        ze.setCrc(crc.getValue());
        z.putNextEntry(ze);
        z.write(e.getValue());
        z.closeEntry();
      }
    }
    return bo.toByteArray();
  }

  static byte[] floats(float... v) {
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(v.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (float f : v) b.putFloat(f);
    return b.array();
  }
}
