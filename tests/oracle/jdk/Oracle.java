/*
 * Differential-test oracle for auditstream's ES|QL string functions.
 *
 * Reads one request per line on stdin and writes one answer per line on stdout. Both are
 * tab-separated fields, each field the UTF-8 text hex-encoded (so any string, newlines and lone
 * surrogates included, travels safely without a JSON library). Requests:
 *
 *   url_decode  <s>                      -> "ok" <result> | "iae"          (URLDecoder, UTF-8)
 *   replace     <pattern> <s> <repl>     -> "ok" <result> | "iae" | "ioobe" | "pse"
 *   find        <pattern> <s>            -> "ok" "1"|"0" | "pse"
 *   grok        <pattern> <s>            -> "ok" <columns> <values>... | "nomatch" | "bad" <msg> | "err" <msg>
 *   joni        <regex> <s>              -> "ok" <start> | "bad" <msg>   (raw Joni search, Ruby syntax)
 *
 * Strings are decoded from UTF-8 the way ES does it (BytesRef.utf8ToString) and results are
 * encoded back the way new BytesRef(String) does it (lone surrogates become U+FFFD). The REPLACE emulation mirrors ES|QL's Replace.safeReplace control flow
 * (find first; size check; appendReplacement) because its order decides which exception wins.
 * GROK emulates ES|QL's GrokEvaluatorExtracter: columns sorted by name, every matched back-ref
 * of a name appended (multi-value), typed by the :int/:long/:float/:double/:boolean suffix.
 */

import org.elasticsearch.grok.Grok;
import org.elasticsearch.grok.GrokBuiltinPatterns;
import org.elasticsearch.grok.GrokCaptureConfig;
import org.jcodings.specific.UTF8Encoding;
import org.joni.Matcher;
import org.joni.Option;
import org.joni.Regex;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.PatternSyntaxException;

public final class Oracle {
    private static final int MAX_RESULT = 1024 * 1024;
    private static final HexFormat HEX = HexFormat.of();

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t", -1);
            String[] a = new String[parts.length - 1];
            for (int i = 1; i < parts.length; i++) {
                a[i - 1] = new String(HEX.parseHex(parts[i]), StandardCharsets.UTF_8);
            }
            List<String> answer;
            try {
                answer = dispatch(parts[0], a);
            } catch (RuntimeException e) {
                answer = List.of("err", String.valueOf(e));
            }
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < answer.size(); i++) {
                if (i > 0) {
                    sb.append('\t');
                }
                sb.append(i == 0 ? answer.get(i) : HEX.formatHex(utf8LikeLucene(answer.get(i))));
            }
            out.println(sb);
            out.flush();
        }
    }

    /** UTF-8 as Lucene's {@code new BytesRef(CharSequence)} writes it: lone surrogates become U+FFFD. */
    private static byte[] utf8LikeLucene(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(++i));
            } else {
                sb.append(Character.isSurrogate(c) ? '\uFFFD' : c);
            }
        }
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static List<String> dispatch(String op, String[] a) {
        switch (op) {
            case "url_decode":
                try {
                    return List.of("ok", URLDecoder.decode(a[0], StandardCharsets.UTF_8));
                } catch (IllegalArgumentException e) {
                    return List.of("iae");
                }
            case "replace":
                return replace(a[0], a[1], a[2]);
            case "find":
                try {
                    return List.of("ok", java.util.regex.Pattern.compile(a[0]).matcher(a[1]).find() ? "1" : "0");
                } catch (PatternSyntaxException e) {
                    return List.of("pse", e.getDescription(), String.valueOf(e.getIndex()));
                }
            case "grok":
                return grok(a[0], a[1]);
            case "joni":
                return joni(a[0], a[1]);
            default:
                return List.of("err", "unknown op " + op);
        }
    }

    private static List<String> replace(String regex, String str, String newStr) {
        java.util.regex.Pattern p;
        try {
            p = java.util.regex.Pattern.compile(regex);
        } catch (PatternSyntaxException e) {
            return List.of("pse", e.getDescription(), String.valueOf(e.getIndex()));
        }
        try {
            java.util.regex.Matcher m = p.matcher(str);
            if (m.find() == false) {
                return List.of("ok", str);
            }
            int constant = newStr.length();
            int groups = 0;
            for (int i = 0; i < newStr.length(); i++) {
                if (newStr.charAt(i) == '$') {
                    groups++;
                    constant -= 2;
                    i++;
                }
            }
            StringBuilder result = new StringBuilder();
            do {
                int potential = constant + groups * (m.end() - m.start());
                if (result.length() + potential + (str.length() - m.end()) > MAX_RESULT) {
                    throw new IllegalArgumentException("too big");
                }
                m.appendReplacement(result, newStr);
            } while (m.find());
            m.appendTail(result);
            return List.of("ok", result.toString());
        } catch (IndexOutOfBoundsException e) {
            return List.of("ioobe");
        } catch (IllegalArgumentException e) {
            return List.of("iae");
        }
    }

    private static List<String> grok(String pattern, String text) {
        Grok g;
        try {
            g = new Grok(GrokBuiltinPatterns.get(true), pattern, msg -> {});
        } catch (RuntimeException e) {
            return List.of("bad", String.valueOf(e.getMessage()));
        }
        List<GrokCaptureConfig> configs = new ArrayList<>(g.captureConfig());
        configs.sort(Comparator.comparing(GrokCaptureConfig::name));
        List<List<Object>> values = new ArrayList<>();
        List<org.elasticsearch.grok.GrokCaptureExtracter> extracters = new ArrayList<>();
        StringBuilder names = new StringBuilder();
        for (GrokCaptureConfig c : configs) {
            List<Object> vs = new ArrayList<>();
            values.add(vs);
            extracters.add(c.objectExtracter(vs::add));
            names.append(c.name()).append('\u0000').append(c.type()).append('\u0001');
        }
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        boolean matched = g.match(bytes, 0, bytes.length, (b, off, region) -> {
            for (var e : extracters) {
                e.extract(b, off, region);
            }
        });
        if (matched == false) {
            return List.of("nomatch", names.toString());
        }
        List<String> answer = new ArrayList<>();
        answer.add("ok");
        answer.add(names.toString());
        for (List<Object> vs : values) {
            StringBuilder sb = new StringBuilder();
            for (Object v : vs) {
                String kind = v instanceof Float ? "f" : v instanceof Double ? "d" : v instanceof Integer ? "i"
                    : v instanceof Long ? "l" : v instanceof Boolean ? "b" : "s";
                String s = v instanceof Float f ? Double.toString(f.doubleValue()) : String.valueOf(v);
                sb.append(kind).append(s).append('\u0000');
            }
            answer.add(sb.toString());
        }
        return answer;
    }

    private static List<String> joni(String regex, String text) {
        byte[] r = regex.getBytes(StandardCharsets.UTF_8);
        Regex re;
        try {
            re = new Regex(r, 0, r.length, Option.DEFAULT, UTF8Encoding.INSTANCE, msg -> {});
        } catch (RuntimeException e) {
            return List.of("bad", String.valueOf(e.getMessage()));
        }
        byte[] t = text.getBytes(StandardCharsets.UTF_8);
        Matcher m = re.matcher(t, 0, t.length);
        int start = m.search(0, t.length, Option.DEFAULT);
        if (start < 0) {
            return List.of("ok", "-1");
        }
        StringBuilder sb = new StringBuilder();
        sb.append(start).append(',').append(m.getEnd());
        return List.of("ok", sb.toString());
    }
}
