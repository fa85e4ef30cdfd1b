package dev.jclip.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class DeviceSpecTest {
  @Test
  void parsesEveryForm() {
    assertEquals(DeviceSpec.AUTO, DeviceSpec.parse("auto"));
    assertEquals(DeviceSpec.CPU, DeviceSpec.parse(" CPU "));
    assertEquals(new DeviceSpec(DeviceSpec.Kind.CUDA, 0), DeviceSpec.parse("cuda"));
    assertEquals(new DeviceSpec(DeviceSpec.Kind.CUDA, 3), DeviceSpec.parse("cuda:3"));
    assertEquals(DeviceSpec.Kind.CUDA_ALL, DeviceSpec.parse("cuda:all").kind());
    for (String bad : new String[] {"tpu", "cuda:-1", "cuda:x", ""}) {
      var e = assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse(bad));
      assertTrue(e.getMessage().contains("auto, cpu, cuda"), e.getMessage());
    }
    assertEquals("cuda:3", DeviceSpec.parse("cuda:3").toString());
  }

  @Test
  void autoSaysWhichDeviceItPicked() {
    List<String> log = new ArrayList<>();
    List<DeviceSpec> picked = DeviceSpec.AUTO.resolve(log::add);
    assertEquals(1, picked.size());
    assertEquals(1, log.size(), "auto must say which device it uses");
    assertTrue(log.get(0).contains(picked.get(0).isCuda() ? "cuda:0" : "CPU"), log.get(0));
  }

  @Test
  void anExplicitGpuThatCannotWorkNamesItself() {
    DeviceSpec cuda7 = DeviceSpec.parse("cuda:7");
    try {
      cuda7.resolve(m -> {});
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().startsWith("device cuda:7"), e.getMessage());
      return;
    }
    // only a machine with eight GPUs gets here
  }

  @Test
  void precisionParses() {
    assertEquals(Precision.BF16, Precision.parse("bf16"));
    assertEquals(2, Precision.FP16.bytes());
    assertThrows(IllegalArgumentException.class, () -> Precision.parse("int8"));
  }
}
