package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.net.URISyntaxException;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Pins the public surface: seven types, and no ScaleCube, Reactor or Netty type in any signature. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class PublicApiTest {
  private static final List<String> FORBIDDEN = List.of("io.scalecube.", "reactor.", "io.netty.",
      "com.fasterxml.");

  /** The classes compiled from src/main (the directory KvCluster.class was loaded from). */
  private static List<Class<?>> mainClasses() throws URISyntaxException, ClassNotFoundException {
    URL url = Objects.requireNonNull(KvCluster.class.getResource("KvCluster.class"));
    File dir = new File(url.toURI()).getParentFile();
    List<Class<?>> out = new ArrayList<>();
    for (String name : Objects.requireNonNull(dir.list())) {
      if (name.endsWith(".class")) {
        out.add(Class.forName("io.kvstore.cluster." + name.substring(0, name.length() - 6)));
      }
    }
    return out;
  }

  @Test
  void onlyTheApiTypesArePublic() throws Exception {
    TreeSet<String> publicTypes = new TreeSet<>();
    for (Class<?> c : mainClasses()) {
      if (Modifier.isPublic(c.getModifiers())) {
        publicTypes.add(c.getSimpleName());
      }
    }
    assertThat(publicTypes).containsExactly("ClusterKeyring", "ClusterReplicator", "ClusterTls",
        "KvCluster",
        "KvClusterBuilder",
        "KvClusterConfig", "ReplicationStats");
  }

  @Test
  void noPublicSignatureMentionsAnImplementationLibrary() throws Exception {
    List<String> leaks = new ArrayList<>();
    for (Class<?> c : mainClasses()) {
      if (!Modifier.isPublic(c.getModifiers())) {
        continue;
      }
      List<Executable> members = new ArrayList<>(List.of(c.getConstructors()));
      members.addAll(List.of(c.getMethods()));
      for (Executable e : members) {
        List<Type> types = new ArrayList<>(List.of(e.getGenericParameterTypes()));
        types.addAll(List.of(e.getGenericExceptionTypes()));
        if (e instanceof Method m) {
          types.add(m.getGenericReturnType());
        }
        for (Type t : types) {
          for (String prefix : FORBIDDEN) {
            if (t.getTypeName().contains(prefix)) {
              leaks.add(c.getSimpleName() + "." + e.getName() + ": " + t.getTypeName());
            }
          }
        }
      }
      if (extendsForbidden(c)) {
        leaks.add(c.getSimpleName() + " extends " + c.getSuperclass());
      }
    }
    assertThat(leaks).isEmpty();
  }

  private static boolean extendsForbidden(Class<?> c) {
    Class<?> s = c.getSuperclass();
    return s != null && FORBIDDEN.stream().anyMatch(p -> s.getName().startsWith(p));
  }

  @Test
  void constructorsAreNotPublic() throws Exception {
    for (Class<?> c : mainClasses()) {
      if (Modifier.isPublic(c.getModifiers()) && !c.isRecord()) {
        for (Constructor<?> k : c.getConstructors()) {
          throw new AssertionError("public constructor " + k);
        }
      }
    }
  }
}
