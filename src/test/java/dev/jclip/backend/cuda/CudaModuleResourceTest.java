package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * Where {@link CudaModule} looks for a module compiled ahead of time (the GPU bundle's cubins,
 * scripts/gpu-bundle.sh), and the stamp it checks one against: no GPU needed. The Maven-built
 * classpath has the PTX and no cubins (a cubin is the bundle's alone).
 */
class CudaModuleResourceTest {
  @Test
  void cubinNamesAndStamps() {
    assertEquals("/ptx/gemm_sm90.cc90.cubin", CudaModule.cubinResource("gemm_sm90", "9.0"));
    assertEquals("/ptx/layernorm.cc80.cubin", CudaModule.cubinResource("layernorm", "8.0"));
    // the SHA-256 the bundle script writes (sha256sum's lower-case hex)
    assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", dev.jclip.io.Downloader.sha256("abc".getBytes(StandardCharsets.US_ASCII)));
    for (String m : new String[] {"gemm_sm90", "flash_attention", "layernorm", "glue", "attention", "attention_any", "cast", "gelu", "cosine_logits"}) {
      assertNotNull(CudaModule.class.getResource("/ptx/" + m + ".ptx"), m + ".ptx");
      assertNull(CudaModule.class.getResource(CudaModule.cubinResource(m, "9.0")), m + ": a cubin on the Maven classpath");
    }
  }
}
