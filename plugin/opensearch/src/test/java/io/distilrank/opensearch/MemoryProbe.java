package io.distilrank.opensearch;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What each cached model costs in a JVM of its own (no other native code around to blur the numbers): resident
 * set (VmRSS) and heap in use after a full GC, before and after loading each zip given on the command line.
 * Run: java -cp target/classes:target/test-classes:$(deps) io.distilrank.opensearch.MemoryProbe a.zip b.zip
 */
public final class MemoryProbe {
    private MemoryProbe() {}

    private static long rss() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return -1;
    }

    private static long heap() throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(200);
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    public static void main(String[] args) throws Exception {
        List<StudentModel> keep = new ArrayList<>();
        long r0 = rss();
        long h0 = heap();
        System.out.printf("start: rss %.1f MB, heap %.1f MB%n", r0 / 1e6, h0 / 1e6);
        for (String zip : args) {
            byte[] bytes = Files.readAllBytes(Path.of(zip));
            long t0 = System.nanoTime();
            StudentModel m = StudentModel.load(zip, bytes, null, 1);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            bytes = null;
            m.score("hp laptop", List.of("HP ProBook 450 G8 15.6 inch laptop", "USB-C cable 2 m"));
            keep.add(m);
            long r = rss();
            long h = heap();
            System.out.printf("%s: load %d ms, rss +%.1f MB, heap +%.1f MB (onnx %.1f MB, vocab %d)%n", Path.of(zip).getFileName(), ms,
                (r - r0) / 1e6, (h - h0) / 1e6, m.onnxBytes() / 1e6, m.vocabSize());
            r0 = r;
            h0 = h;
        }
        keep.forEach(StudentModel::release);
    }
}
